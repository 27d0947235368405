"""Measure training with the LOCAL trainer: from ``train`` to the trained model in hand.

Run from the repository root with caikit_mm installed:

    python benchmarks/bench_training.py [--quick] [--caikit-python PATH]

It prints one JSON object with medians of
``ModelManager.train(TrainingTrivial, value=2).load()`` in thread mode (with and
without a save path) and in subprocess mode with the spawn and fork start
methods, plus the cold start of a spawned child's imports. With
``--caikit-python`` (the python of the venv that
``benchmarks/setup_caikit_env.sh`` creates), caikit 0.29.1's LOCAL trainer runs
the same workload in that interpreter, through
``benchmarks/caikit_side/measure.py``, and the output puts both side by side.
Timings use ``time.perf_counter_ns``.
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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training_bench_module import TrainingTrivial

from caikit_mm import ModelManager

BENCH_DIR = Path(__file__).resolve().parent

# (runs, warmups) per mode; spawn and fork start a process per run.
FULL_RUNS = {"thread": (2000, 200), "thread_with_save": (500, 50), "spawn": (30, 3)}
QUICK_RUNS = {"thread": (100, 10), "thread_with_save": (50, 5), "spawn": (3, 1)}
FULL_RUNS["fork"] = FULL_RUNS["spawn"]
QUICK_RUNS["fork"] = QUICK_RUNS["spawn"]

TARGET_MS = {"thread": 0.3, "spawn": 150.0}


def make_manager() -> ModelManager:
    trainers = {
        "default": {"type": "LOCAL", "config": {"use_subprocess": False}},
        "spawn": {
            "type": "LOCAL",
            "config": {"use_subprocess": True, "subprocess_start_method": "spawn"},
        },
        "fork": {
            "type": "LOCAL",
            "config": {"use_subprocess": True, "subprocess_start_method": "fork"},
        },
    }
    return ModelManager(config={"model_management": {"trainers": trainers}})


def train_once_ns(manager: ModelManager, trainer: str, save_path: str | None) -> int:
    start = time.perf_counter_ns()
    model = manager.train(
        TrainingTrivial, value=2, trainer=trainer, save_path=save_path
    ).load()
    elapsed = time.perf_counter_ns() - start
    if not isinstance(model, TrainingTrivial) or model.value != 2:
        raise RuntimeError(f"training returned an unexpected model: {model!r}")
    return elapsed


def measure_mode(
    manager: ModelManager, mode: str, runs: int, warmups: int, root: Path
) -> dict[str, Any]:
    trainer = {"thread": "default", "thread_with_save": "default"}.get(mode, mode)
    counter = iter(range(10**9))

    def save_path() -> str | None:
        return None if mode == "thread" else str(root / f"{mode}-{next(counter)}")

    first = train_once_ns(manager, trainer, save_path())
    for _ in range(warmups):
        train_once_ns(manager, trainer, save_path())
    samples = [train_once_ns(manager, trainer, save_path()) for _ in range(runs)]
    result: dict[str, Any] = {
        "samples": runs,
        "train_to_model_ms": round(statistics.median(samples) / 1e6, 4),
        "p90_ms": round(sorted(samples)[int(len(samples) * 0.9)] / 1e6, 4),
        "first_call_ms": round(first / 1e6, 3),
    }
    if mode in TARGET_MS:
        result["target_ms"] = TARGET_MS[mode]
        result["met"] = result["train_to_model_ms"] < TARGET_MS[mode]
    return result


def measure_child_start(runs: int) -> dict[str, Any]:
    """Time a fresh interpreter that imports what a spawned training child imports."""
    imports = (
        "import caikit_mm.model_management._subprocess_worker, "
        "caikit_mm.model_management.training, training_bench_module"
    )

    def wall_ms(code: str) -> float:
        start = time.perf_counter_ns()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=BENCH_DIR)
        return (time.perf_counter_ns() - start) / 1e6

    pass_ms, child_ms = [], []
    for _ in range(runs):
        pass_ms.append(wall_ms("pass"))
        child_ms.append(wall_ms(imports))
    return {
        "samples": runs,
        "python_pass_ms": round(statistics.median(pass_ms), 2),
        "child_imports_ms": round(statistics.median(child_ms), 2),
        "method": "wall time of python -c, interleaved; the child's imports are "
        "the worker, the training helpers and the module's own file",
    }


def run_caikit(python: str, quick: bool) -> dict[str, Any]:
    """Run caikit's side and return its training results, or an error."""
    command = [python, str(BENCH_DIR / "caikit_side" / "measure.py")]
    if quick:
        command.append("--quick")
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError:
        tail = completed.stderr[-500:]
        return {"error": f"measure.py exited {completed.returncode}: {tail}"}
    training: dict[str, Any] = report.get("training") or {"error": report.get("error")}
    training["caikit_version"] = (
        report.get("environment", {}).get("distributions", {}).get("caikit")
    )
    return training


def compile_bytecode() -> None:
    """Write the ``.pyc`` files that every spawned child would otherwise compile.

    A wheel install compiles them, but an editable install run with
    ``PYTHONDONTWRITEBYTECODE=1`` never writes them, so each child would compile
    caikit_mm from source. The caikit side gets the same treatment for its module.
    """
    import compileall

    import caikit_mm

    compileall.compile_dir(Path(caikit_mm.__file__).parent, quiet=1)
    for module_file in (
        BENCH_DIR / "training_bench_module.py",
        BENCH_DIR / "caikit_side" / "trivial_module.py",
    ):
        compileall.compile_file(module_file, quiet=1)


def timed(label: str, function: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    start = time.perf_counter()
    result = function()
    print(f"{label}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few runs, a smoke test")
    parser.add_argument(
        "--caikit-python",
        metavar="PATH",
        help="python of the caikit 0.29.1 venv, to measure caikit side by side",
    )
    return parser


def describe_environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        # Other work on the machine slows process starts most; see the report.
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    plan = QUICK_RUNS if args.quick else FULL_RUNS
    compile_bytecode()
    manager = make_manager()
    report: dict[str, Any] = {
        "tool": "caikit_mm",
        "statistic": "median over samples; first_call_ms is one call",
        "environment": describe_environment(),
        "workload": "ModelManager.train(TrainingTrivial, value=2).load(); save "
        "paths are new folders; spawn and fork use use_subprocess: true; bytecode "
        "of caikit_mm and both trivial modules is compiled first",
    }

    with tempfile.TemporaryDirectory(prefix="caikit-mm-bench-training-") as root:
        report["training"] = {
            mode: timed(
                mode, lambda m=mode: measure_mode(manager, m, *plan[m], Path(root))
            )
            for mode in plan
        }
    report["spawned_child_start"] = timed(
        "child start", lambda: measure_child_start(5 if args.quick else 20)
    )

    if args.caikit_python:
        caikit = timed("caikit", lambda: run_caikit(args.caikit_python, args.quick))
        report["caikit"] = caikit
        report["comparison"] = _compare(report["training"], caikit)
    report["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)

    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _compare(ours: dict[str, Any], caikit: dict[str, Any]) -> dict[str, Any]:
    comparison: dict[str, Any] = {}
    for mode in ("thread", "thread_with_save", "spawn"):
        theirs = caikit.get(mode, {}).get("train_to_model_ms")
        mine = ours.get(mode, {}).get("train_to_model_ms")
        if theirs and mine:
            comparison[mode] = {
                "caikit_mm_ms": mine,
                "caikit_ms": theirs,
                "speedup": round(theirs / mine, 1),
            }
    return comparison


if __name__ == "__main__":
    sys.exit(main())
