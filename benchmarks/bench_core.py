"""Measure the core of caikit_mm: import, load, cached load, bulk and threaded loads.

Run from the repository root with caikit_mm installed:

    python benchmarks/bench_core.py [--quick] [--caikit-python PATH]

It prints one JSON object with medians. With ``--caikit-python`` (the python of
the venv that ``benchmarks/setup_caikit_env.sh`` creates), the same workloads
also run through caikit 0.29.1 in that interpreter, and the output adds the
ratios. Timings use ``time.perf_counter_ns``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import caikit_mm
from caikit_mm import ModelManager, ModuleBase, ModuleConfig

MODULE_ID = "caikit-mm-bench-core-trivial"
THREADS = 8
BULK_FOLDERS = 1000

RSS_PROBE = (
    "import resource, subprocess, sys\n"
    "subprocess.run([sys.executable, '-c', sys.argv[1]], check=True)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


@caikit_mm.module(id=MODULE_ID, name="Trivial", version="0.0.1")
class Trivial(ModuleBase):
    """A module whose only state is one integer in config.yml."""

    load_calls = 0

    def __init__(self, value: int) -> None:
        self.value = value

    @classmethod
    def load(
        cls, model_path: str, module_config: ModuleConfig | None = None
    ) -> Trivial:
        cls.load_calls += 1
        config = module_config or ModuleConfig.load(model_path)
        return cls(config["value"])


def write_folders(root: Path, count: int) -> list[str]:
    """Create ``count`` model folders of the trivial module under ``root``."""
    folders = []
    for index in range(count):
        folder = root / f"model-{index:05d}"
        folder.mkdir(parents=True)
        (folder / "config.yml").write_text(
            f"module_id: {MODULE_ID}\nname: Trivial\nversion: 0.0.1\nvalue: {index}\n",
            encoding="utf-8",
        )
        folders.append(str(folder))
    return folders


def median_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000


def measure_import(runs: int) -> dict[str, Any]:
    def wall(code: str) -> float:
        samples = []
        for _ in range(runs):
            start = time.perf_counter_ns()
            subprocess.run([sys.executable, "-c", code], check=True)
            samples.append(time.perf_counter_ns() - start)
        return statistics.median(samples) / 1e6

    def rss(code: str) -> float:
        output = subprocess.run(
            [sys.executable, "-c", RSS_PROBE, code],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return int(output.strip()) / 1024

    baseline, imported = wall("pass"), wall("import caikit_mm")
    return {
        "runs": runs,
        "python_pass_ms": baseline,
        "import_ms": imported,
        "import_ratio_to_pass": imported / baseline,
        "python_pass_peak_rss_mib": rss("pass"),
        "import_peak_rss_mib": rss("import caikit_mm"),
    }


def measure_single_loads(root: Path, samples: int) -> dict[str, Any]:
    """Time manager loads and the module's own loads, interleaved so that load
    from other processes affects both sides alike."""
    manager_paths = write_folders(root / "manager", samples)
    own_paths = write_folders(root / "own", samples)
    manager = ModelManager()
    manager.load(manager_paths[0])
    Trivial.load(own_paths[0])
    manager_ns, own_ns = [], []
    for manager_path, own_path in zip(manager_paths[1:], own_paths[1:], strict=True):
        start = time.perf_counter_ns()
        manager.load(manager_path)
        manager_ns.append(time.perf_counter_ns() - start)
        start = time.perf_counter_ns()
        Trivial.load(own_path)
        own_ns.append(time.perf_counter_ns() - start)
    manager_us, own_us = median_us(manager_ns), median_us(own_ns)
    return {
        "samples": samples - 1,
        "manager_load_us": manager_us,
        "module_own_load_us": own_us,
        "ratio_to_own_load": manager_us / own_us,
    }


def measure_cached(root: Path, calls: int) -> dict[str, Any]:
    path = write_folders(root / "cached", 1)[0]
    manager = ModelManager()
    manager.load(path)
    rounds = []
    for _ in range(7):
        start = time.perf_counter_ns()
        for _ in range(calls):
            manager.load(path)
        rounds.append((time.perf_counter_ns() - start) / calls)
    return {
        "calls_per_round": calls,
        "rounds": 7,
        "cached_load_us": statistics.median(rounds) / 1000,
    }


def measure_bulk(root: Path, repetitions: int) -> dict[str, Any]:
    sequential, threaded = [], []
    for rep in range(repetitions):
        paths = write_folders(root / f"bulk-seq-{rep}", BULK_FOLDERS)
        manager = ModelManager()
        start = time.perf_counter_ns()
        for path in paths:
            manager.load(path)
        sequential.append(time.perf_counter_ns() - start)
        paths = write_folders(root / f"bulk-thr-{rep}", BULK_FOLDERS)
        manager = ModelManager()
        start = time.perf_counter_ns()
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(manager.load, paths))
        threaded.append(time.perf_counter_ns() - start)
    return {
        "folders": BULK_FOLDERS,
        "repetitions": repetitions,
        "sequential_s": statistics.median(sequential) / 1e9,
        "threads_8_s": statistics.median(threaded) / 1e9,
    }


def measure_same_model(root: Path, repetitions: int) -> dict[str, Any]:
    times, load_runs = [], []
    for rep in range(repetitions):
        path = write_folders(root / f"same-{rep}", 1)[0]
        manager = ModelManager()
        before = Trivial.load_calls
        barrier = threading.Barrier(THREADS)
        start = time.perf_counter_ns()
        with ThreadPoolExecutor(THREADS) as pool:
            loads = [
                pool.submit(_load_after, barrier, manager, path) for _ in range(THREADS)
            ]
            models = [future.result() for future in loads]
        times.append(time.perf_counter_ns() - start)
        load_runs.append(Trivial.load_calls - before)
        assert all(m is models[0] for m in models)
    return {
        "threads": THREADS,
        "repetitions": repetitions,
        "total_ms": statistics.median(times) / 1e6,
        "module_load_runs": max(load_runs),
    }


def _load_after(barrier: threading.Barrier, manager: ModelManager, path: str) -> Any:
    barrier.wait()
    return manager.load(path)


def run_caikit(python: str, quick: bool) -> dict[str, Any]:
    script = Path(__file__).with_name("caikit_side") / "measure.py"
    args = [python, str(script), *(["--quick"] if quick else [])]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1:] or "failed"}
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--caikit-python", help="python of a venv with caikit 0.29.1")
    args = parser.parse_args()
    quick = args.quick
    with tempfile.TemporaryDirectory(prefix="bench-core-") as tmp:
        root = Path(tmp)
        results: dict[str, Any] = {
            "machine": {
                "cpus": os.cpu_count(),
                "arch": platform.machine(),
                "python": platform.python_version(),
            },
            "import": measure_import(5 if quick else 30),
            "single_load": measure_single_loads(root, 101 if quick else 1001),
            "cached_load": measure_cached(root, 10_000 if quick else 200_000),
            "bulk": measure_bulk(root, 1 if quick else 5),
            "same_model_8_threads": measure_same_model(root, 3 if quick else 20),
        }
    if args.caikit_python:
        results["caikit"] = run_caikit(args.caikit_python, quick)
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
