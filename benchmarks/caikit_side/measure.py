"""Measure caikit 0.29.1 model management, the baseline for caikit_mm.

Run with the python of the venv that benchmarks/setup_caikit_env.sh creates:

    benchmarks/.venv-caikit/bin/python benchmarks/caikit_side/measure.py [--quick]

The script prints one JSON object to stdout. Progress logs go to stderr. Each
workload reports medians and the sample count. A workload that fails reports
an "error" field in place of its numbers, and the other workloads still run.
All timings use time.perf_counter_ns. Every workload uses caikit's own public
API: caikit.load, caikit.core.model_manager.ModelManager and the LOCAL trainer.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

LOG = logging.getLogger("caikit_side.measure")

THREAD_COUNT = 8
BULK_FOLDER_COUNT = 1000

# Distributions whose versions change what `import caikit` costs.
REPORTED_DISTRIBUTIONS = (
    "caikit",
    "alchemy-config",
    "alchemy-logging",
    "grpcio",
    "numpy",
    "protobuf",
    "PyYAML",
)

# The wrapper process starts one child and prints RUSAGE_CHILDREN ru_maxrss,
# which is that child's peak resident set size, in KiB on Linux. A separate
# wrapper per sample keeps other children of this script out of the number.
RSS_PROBE = (
    "import resource, subprocess, sys\n"
    "subprocess.run([sys.executable, '-c', sys.argv[1]], check=True)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Settings:
    """Repetition counts for one run."""

    import_runs: int
    rss_runs: int
    single_load_samples: int
    cached_load_calls: int
    bulk_repetitions: int
    same_model_repetitions: int
    thread_train_runs: int
    spawn_train_runs: int
    warmups: int


FULL_SETTINGS = Settings(
    import_runs=30,
    rss_runs=5,
    single_load_samples=1000,
    cached_load_calls=20000,
    bulk_repetitions=5,
    same_model_repetitions=50,
    thread_train_runs=200,
    spawn_train_runs=20,
    warmups=20,
)

QUICK_SETTINGS = Settings(
    import_runs=3,
    rss_runs=1,
    single_load_samples=100,
    cached_load_calls=1000,
    bulk_repetitions=1,
    same_model_repetitions=5,
    thread_train_runs=10,
    spawn_train_runs=2,
    warmups=3,
)


class FolderFactory:
    """Source of model folders that no load has seen, so no sample hits a cache."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._next_index = 0

    def create(self, count: int) -> list[str]:
        from trivial_module import write_model_folder

        paths = []
        for _ in range(count):
            path = self._root / f"model-{self._next_index:06d}"
            self._next_index += 1
            write_model_folder(path)
            paths.append(str(path))
        return paths

    def create_saved(self, count: int) -> list[str]:
        """Create folders with TrivialModule.save, which writes caikit's full config."""
        from trivial_module import TrivialModule

        paths = []
        for _ in range(count):
            path = self.reserve_path("saved")
            TrivialModule(1).save(path)
            paths.append(path)
        return paths

    def reserve_path(self, prefix: str) -> str:
        """Return a fresh path inside the root without creating it."""
        path = self._root / f"{prefix}-{self._next_index:06d}"
        self._next_index += 1
        return str(path)


def median_ms(samples_ns: list[int]) -> float:
    return round(statistics.median(samples_ns) / 1e6, 3)


def median_us(samples_ns: list[int]) -> float:
    return round(statistics.median(samples_ns) / 1e3, 2)


def median_s(samples_ns: list[int]) -> float:
    return round(statistics.median(samples_ns) / 1e9, 4)


def time_call_ns(function: Callable[[], object]) -> int:
    start = time.perf_counter_ns()
    function()
    return time.perf_counter_ns() - start


# --- cold import ---------------------------------------------------------------


def time_child_ns(code: str) -> int:
    """Time one fresh interpreter that runs `code`, from spawn to exit."""
    command = [sys.executable, "-c", code]
    start = time.perf_counter_ns()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter_ns() - start


def peak_rss_kib(code: str) -> int:
    """Return the peak RSS, in KiB, of one fresh interpreter that runs `code`."""
    command = [sys.executable, "-c", RSS_PROBE, code]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    return int(completed.stdout.strip())


def measure_import(settings: Settings) -> JsonDict:
    # The warmup runs fill the OS page cache before the timed runs.
    for _ in range(max(1, settings.warmups // 10)):
        time_child_ns("import caikit")
        time_child_ns("pass")

    import_ns: list[int] = []
    pass_ns: list[int] = []
    for _ in range(settings.import_runs):
        import_ns.append(time_child_ns("import caikit"))
        pass_ns.append(time_child_ns("pass"))

    import_rss = [peak_rss_kib("import caikit") for _ in range(settings.rss_runs)]
    pass_rss = [peak_rss_kib("pass") for _ in range(settings.rss_runs)]
    import_ms = median_ms(import_ns)
    pass_ms = median_ms(pass_ns)
    return {
        "samples": settings.import_runs,
        "import_caikit_wall_ms": import_ms,
        "python_pass_wall_ms": pass_ms,
        "import_minus_pass_ms": round(import_ms - pass_ms, 3),
        "rss_samples": settings.rss_runs,
        "import_caikit_peak_rss_mib": round(statistics.median(import_rss) / 1024, 1),
        "python_pass_peak_rss_mib": round(statistics.median(pass_rss) / 1024, 1),
        "method": (
            "wall time of `python -c 'import caikit'` and `python -c pass` "
            "subprocesses; peak RSS from RUSAGE_CHILDREN ru_maxrss of a wrapper "
            "process with that one child"
        ),
    }


# --- single and cached loads ---------------------------------------------------


def measure_single_load(settings: Settings, folders: FolderFactory) -> JsonDict:
    import caikit
    from trivial_module import TrivialModule

    # caikit's module metaclass wraps TrivialModule.load so that it reads
    # config.yml into model.metadata before the module's body runs.
    # __wrapped__ is the body alone, which reads config.yml once.
    load_body = TrivialModule.load.__wrapped__  # type: ignore[attr-defined]

    def load_all(paths: tuple[str, ...]) -> tuple[int, ...]:
        caikit_path, saved_path, module_path, body_path = paths
        return (
            time_call_ns(lambda: caikit.load(caikit_path)),
            time_call_ns(lambda: caikit.load(saved_path)),
            time_call_ns(lambda: TrivialModule.load(module_path)),
            time_call_ns(lambda: load_body(TrivialModule, body_path)),
        )

    def create_folders(count: int) -> Iterator[tuple[str, ...]]:
        return zip(
            folders.create(count),
            folders.create_saved(count),
            folders.create(count),
            folders.create(count),
            strict=True,
        )

    warmup_samples = [load_all(paths) for paths in create_folders(settings.warmups)]
    # The four calls alternate on every sample, so drift affects each alike.
    count = settings.single_load_samples
    samples = [load_all(paths) for paths in create_folders(count)]

    caikit_ns, saved_ns, module_ns, body_ns = (
        list(column) for column in zip(*samples, strict=True)
    )
    return {
        "samples": count,
        "caikit_load_us": median_us(caikit_ns),
        "caikit_load_saved_config_us": median_us(saved_ns),
        "module_load_us": median_us(module_ns),
        "module_load_body_us": median_us(body_ns),
        "caikit_load_first_call_us": round(warmup_samples[0][0] / 1e3, 2),
        "method": (
            "each sample loads a folder that no earlier call loaded; the config.yml "
            "has 4 keys, except saved_config, which TrivialModule.save wrote with "
            "caikit's ModuleSaver (9 keys); module_load is TrivialModule.load(path) "
            "with caikit's metadata wrapper, module_load_body is the undecorated "
            "load function; first_call is the process's first caikit.load, which "
            "also builds the default finder and initializer"
        ),
    }


def measure_cached_load(settings: Settings, folders: FolderFactory) -> JsonDict:
    import caikit
    from trivial_module import load_call_count

    # caikit 0.29.1 caches a model only when load_singleton=True, keyed by path.
    (path,) = folders.create(1)
    before = load_call_count()
    caikit.load(path, load_singleton=True)
    for _ in range(settings.warmups * 10):
        caikit.load(path, load_singleton=True)

    samples = [
        time_call_ns(lambda: caikit.load(path, load_singleton=True))
        for _ in range(settings.cached_load_calls)
    ]
    return {
        "samples": settings.cached_load_calls,
        "caikit_load_singleton_cached_us": median_us(samples),
        "module_load_calls": load_call_count() - before,
        "method": "caikit.load(path, load_singleton=True) on a path already cached",
    }


# --- bulk and concurrent loads ---------------------------------------------------


def clear_singleton_cache() -> None:
    from caikit.core import MODEL_MANAGER

    MODEL_MANAGER.clear_singleton_cache()


def load_sequentially_ns(paths: list[str], singleton: bool) -> int:
    import caikit

    start = time.perf_counter_ns()
    for path in paths:
        caikit.load(path, load_singleton=singleton)
    return time.perf_counter_ns() - start


def load_in_pool_ns(pool: ThreadPoolExecutor, paths: list[str], singleton: bool) -> int:
    import caikit

    start = time.perf_counter_ns()
    list(pool.map(lambda path: caikit.load(path, load_singleton=singleton), paths))
    return time.perf_counter_ns() - start


def measure_bulk_load(settings: Settings, folders: FolderFactory) -> JsonDict:
    results: JsonDict = {
        "folders": BULK_FOLDER_COUNT,
        "threads": THREAD_COUNT,
        "samples": settings.bulk_repetitions,
    }
    with ThreadPoolExecutor(max_workers=THREAD_COUNT) as pool:
        # Start all worker threads before timing.
        list(pool.map(time.sleep, [0.01] * THREAD_COUNT))
        for singleton in (False, True):
            suffix = "_singleton" if singleton else ""
            sequential_ns: list[int] = []
            threaded_ns: list[int] = []
            for _ in range(settings.bulk_repetitions):
                clear_singleton_cache()
                paths = folders.create(BULK_FOLDER_COUNT)
                sequential_ns.append(load_sequentially_ns(paths, singleton))
                clear_singleton_cache()
                paths = folders.create(BULK_FOLDER_COUNT)
                threaded_ns.append(load_in_pool_ns(pool, paths, singleton))
            results[f"sequential{suffix}_s"] = median_s(sequential_ns)
            results[f"threads{suffix}_s"] = median_s(threaded_ns)
    clear_singleton_cache()
    results["method"] = (
        "caikit.load on fresh folders, one after another and from a thread pool; "
        "the _singleton keys pass load_singleton=True"
    )
    return results


def load_same_model_once(path: str, singleton: bool) -> tuple[int, int]:
    """Load one new path from THREAD_COUNT threads at once.

    Returns the elapsed nanoseconds and how many times TrivialModule.load ran.
    """
    import caikit
    from trivial_module import load_call_count

    barrier = threading.Barrier(THREAD_COUNT + 1)
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            caikit.load(path, load_singleton=singleton)
        except Exception as error:  # noqa: BLE001 - re-raised by the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(THREAD_COUNT)]
    for thread in threads:
        thread.start()
    before = load_call_count()
    barrier.wait()
    start = time.perf_counter_ns()
    for thread in threads:
        thread.join()
    elapsed_ns = time.perf_counter_ns() - start
    if errors:
        raise errors[0]
    return elapsed_ns, load_call_count() - before


def measure_same_model(settings: Settings, folders: FolderFactory) -> JsonDict:
    results: JsonDict = {
        "threads": THREAD_COUNT,
        "samples": settings.same_model_repetitions,
    }
    for singleton in (False, True):
        elapsed_ns: list[int] = []
        load_calls: list[int] = []
        for path in folders.create(settings.same_model_repetitions):
            clear_singleton_cache()
            elapsed, calls = load_same_model_once(path, singleton)
            elapsed_ns.append(elapsed)
            load_calls.append(calls)
        key = "singleton" if singleton else "default"
        results[key] = {
            "total_ms": median_ms(elapsed_ns),
            "module_load_calls_min": min(load_calls),
            "module_load_calls_max": max(load_calls),
        }
    clear_singleton_cache()
    results["method"] = (
        "8 threads released by a barrier call caikit.load on one new path; "
        "singleton passes load_singleton=True"
    )
    return results


# --- training ----------------------------------------------------------------------


def make_manager(use_subprocess: bool) -> Any:
    """Configure caikit's default LOCAL trainer and return a new ModelManager.

    A ModelManager builds its trainer from config on first use and then keeps
    it, so each mode gets a new manager.
    """
    import caikit
    from caikit.core.model_manager import ModelManager

    trainer_config = {
        "type": "LOCAL",
        "config": {
            "use_subprocess": use_subprocess,
            "subprocess_start_method": "spawn",
        },
    }
    caikit.configure(
        config_dict={"model_management": {"trainers": {"default": trainer_config}}}
    )
    return ModelManager()


def train_once_ns(manager: Any, save_path: str | None) -> int:
    """Time ModelManager.train through to the trained model in hand."""
    from trivial_module import TrivialModule

    start = time.perf_counter_ns()
    future = manager.train(TrivialModule, value=2, save_path=save_path)
    model = future.load()
    elapsed_ns = time.perf_counter_ns() - start
    if not isinstance(model, TrivialModule) or model.value != 2:
        raise RuntimeError(f"training returned an unexpected model: {model!r}")
    return elapsed_ns


@dataclass(frozen=True)
class TrainMode:
    """One configuration of caikit's LOCAL trainer."""

    name: str
    use_subprocess: bool
    save: bool


# NOTE: a spawned trainer process also re-runs this script's top level as
# __mp_main__. That imports only the standard library, but Python compiles a
# script from source on every run, which took about 4 ms on the 2-core machine.
TRAIN_MODES = (
    TrainMode("thread", use_subprocess=False, save=False),
    TrainMode("thread_with_save", use_subprocess=False, save=True),
    TrainMode("spawn", use_subprocess=True, save=True),
)


def measure_train_mode(
    mode: TrainMode, settings: Settings, folders: FolderFactory
) -> JsonDict:
    manager = make_manager(mode.use_subprocess)
    if mode.use_subprocess:
        runs, warmups = settings.spawn_train_runs, 1
    else:
        runs, warmups = settings.thread_train_runs, settings.warmups

    def save_path() -> str | None:
        return folders.reserve_path("trained") if mode.save else None

    warmup_ns = [train_once_ns(manager, save_path()) for _ in range(warmups)]
    samples = [train_once_ns(manager, save_path()) for _ in range(runs)]
    return {
        "samples": runs,
        "train_to_model_ms": median_ms(samples),
        # The first train call on a new ModelManager also builds its trainer.
        "first_call_ms": round(warmup_ns[0] / 1e6, 3),
    }


def measure_training(settings: Settings, folders: FolderFactory) -> JsonDict:
    results: JsonDict = {}
    for mode in TRAIN_MODES:
        results[mode.name] = run_workload(
            f"training {mode.name}",
            functools.partial(measure_train_mode, mode, settings, folders),
        )
    results["method"] = (
        "ModelManager.train(TrivialModule).load() with the LOCAL trainer; thread "
        "uses use_subprocess=false and no save_path; thread_with_save adds a "
        "save_path; spawn uses use_subprocess=true, subprocess_start_method=spawn, "
        "and a save_path, which caikit requires to return a model from a subprocess"
    )
    return results


# --- driver ------------------------------------------------------------------------


def run_workload(name: str, workload: Callable[[], JsonDict]) -> JsonDict:
    """Run one workload and return its results, or an "error" field if it raised."""
    LOG.info("starting %s", name)
    start = time.perf_counter()
    try:
        result = workload()
    except Exception as error:  # noqa: BLE001 - reported in the JSON output
        LOG.exception("workload %s failed", name)
        return {"error": f"{type(error).__name__}: {error}"}
    LOG.info("finished %s in %.1f s", name, time.perf_counter() - start)
    return result


def distribution_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in REPORTED_DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment_info(quick: bool, settings: Settings) -> JsonDict:
    return {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "distributions": distribution_versions(),
        "quick": quick,
        "settings": asdict(settings),
    }


def measure_all(settings: Settings, folders: FolderFactory) -> JsonDict:
    return {
        "import": run_workload("import", lambda: measure_import(settings)),
        "single_load": run_workload(
            "single load", lambda: measure_single_load(settings, folders)
        ),
        "cached_load": run_workload(
            "cached load", lambda: measure_cached_load(settings, folders)
        ),
        "bulk_load": run_workload(
            "bulk load", lambda: measure_bulk_load(settings, folders)
        ),
        "same_model_threads": run_workload(
            "same model from threads", lambda: measure_same_model(settings, folders)
        ),
        "training": measure_training(settings, folders),
    }


@contextmanager
def stdout_reserved_for_json() -> Iterator[TextIO]:
    """Send everything written to file descriptor 1 to stderr, and yield a
    stream on the original stdout.

    Child processes inherit descriptor 1, so log lines from a spawned trainer
    cannot mix into the JSON output.
    """
    sys.stdout.flush()
    json_stream = os.fdopen(os.dup(1), "w", encoding="utf-8")
    saved_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        yield json_stream
    finally:
        sys.stdout.flush()
        os.dup2(saved_fd, 1)
        os.close(saved_fd)
        json_stream.flush()
        json_stream.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="use few repetitions, for a smoke run of a few seconds",
    )
    return parser.parse_args(argv)


def configure_logging() -> None:
    # Only this script's logger gets a handler. The root logger stays at
    # WARNING, so caikit's alog channels cost what they cost in a default setup.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    settings = QUICK_SETTINGS if args.quick else FULL_SETTINGS
    report: JsonDict = {
        "tool": "caikit",
        "statistic": "median over samples; a first_call_* value is one call",
    }
    with stdout_reserved_for_json() as json_stream:
        start = time.perf_counter()
        try:
            import trivial_module  # noqa: F401 - registers the module with caikit
        except ImportError as error:
            report["error"] = (
                f"caikit is not importable from {sys.executable}: {error}. "
                "Run benchmarks/setup_caikit_env.sh and use that venv's python."
            )
        else:
            report["environment"] = environment_info(args.quick, settings)
            with tempfile.TemporaryDirectory(prefix="caikit-bench-") as root:
                report.update(measure_all(settings, FolderFactory(Path(root))))
        report["total_wall_s"] = round(time.perf_counter() - start, 1)
        json.dump(report, json_stream, indent=2)
        json_stream.write("\n")
    return 1 if "error" in report else 0


if __name__ == "__main__":
    sys.exit(main())
