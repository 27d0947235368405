"""Measure the overhead of the RAY trainer and the RAY initializer over bare Ray.

Run from the repository root with the ``ray`` extra installed:

    python benchmarks/bench_ray.py [--rounds N] [--calls N]

It starts a local Ray instance (2 CPUs, no dashboard) and prints one JSON
object with medians:

- a trivial training on the RAY trainer in task mode, from ``train`` to a
  COMPLETED future with the model in memory, against a bare Ray task that calls
  the same ``train`` and returns the model, from ``.remote()`` to ``ray.get``;
- one ``run`` through the RAY initializer's proxy, against a bare call of a
  Ray actor that contains the same model.

Both sides of each pair run interleaved, so a noisy neighbour affects both.
Timings use ``time.perf_counter_ns``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import caikit_mm
from caikit_mm import ModelManager, ModuleBase, ModuleConfig
from caikit_mm.modules import save_config

MODULE_ID = "caikit-mm-bench-ray-trivial"


@caikit_mm.module(id=MODULE_ID, name="Trivial", version="0.0.1")
class Trivial(ModuleBase):
    """Adds ``offset`` to a number; the smallest model that trains and runs."""

    def __init__(self, offset: int) -> None:
        self.offset = offset

    @classmethod
    def train(cls, offset: int = 1) -> Trivial:
        return cls(offset)

    def run(self, value: int) -> int:
        return value + self.offset

    def save(self, model_path: str) -> None:
        save_config(self, model_path, offset=self.offset)

    @classmethod
    def load(cls, model_path: str, module_config: ModuleConfig) -> Trivial:
        return cls(int(module_config["offset"]))


def bare_train(module_class: type[Trivial], offset: int) -> Trivial:
    return module_class.train(offset)


class BareHost:
    """A plain Ray actor holding the model, as an application would write it."""

    def __init__(self, model: Trivial) -> None:
        self.model = model

    def run(self, value: int) -> int:
        return self.model.run(value)


def median_ms(samples: list[int]) -> float:
    return statistics.median(samples) / 1e6


def measure_training(ray: Any, manager: ModelManager, rounds: int) -> dict[str, Any]:
    task = ray.remote(num_cpus=1)(bare_train)
    ray.get(task.remote(Trivial, 1))
    manager.train(Trivial, trainer="ray", wait=True).load()
    ours: list[int] = []
    bare: list[int] = []
    for round_number in range(rounds):
        start = time.perf_counter_ns()
        model = ray.get(task.remote(Trivial, round_number))
        bare.append(time.perf_counter_ns() - start)
        assert model.offset == round_number
        start = time.perf_counter_ns()
        future = manager.train(Trivial, trainer="ray", wait=True, offset=round_number)
        ours.append(time.perf_counter_ns() - start)
        assert future.load().offset == round_number
    return _pair(ours, bare, rounds)


def measure_run(ray: Any, manager: ModelManager, calls: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="caikit-mm-bench-ray-")) / "trivial"
    Trivial(5).save(str(folder))
    proxy = manager.load(str(folder), initializer="ray")
    actor = ray.remote(num_cpus=0)(BareHost).remote(Trivial(5))
    assert proxy.run(1) == ray.get(actor.run.remote(1)) == 6
    ours: list[int] = []
    bare: list[int] = []
    for value in range(calls):
        start = time.perf_counter_ns()
        ray.get(actor.run.remote(value))
        bare.append(time.perf_counter_ns() - start)
        start = time.perf_counter_ns()
        proxy.run(value)
        ours.append(time.perf_counter_ns() - start)
    manager.unload(str(folder), initializer="ray")
    ray.kill(actor)
    return _pair(ours, bare, calls)


def _pair(ours: list[int], bare: list[int], count: int) -> dict[str, Any]:
    return {
        "count": count,
        "caikit_mm_ms": round(median_ms(ours), 3),
        "bare_ray_ms": round(median_ms(bare), 3),
        "ratio": round(median_ms(ours) / median_ms(bare), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="trainings per side")
    parser.add_argument("--calls", type=int, default=2000, help="run calls per side")
    args = parser.parse_args()

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        # The workers import this script's module classes by value.
        runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}},
    )
    config = {
        "model_management": {
            "trainers": {"ray": {"type": "RAY", "config": {"num_cpus": 1}}},
            "initializers": {"ray": {"type": "RAY", "config": {"num_cpus": 0}}},
        }
    }
    manager = ModelManager(config)
    try:
        result = {
            "python": platform.python_version(),
            "ray": ray.__version__,
            "cpus": os.cpu_count(),
            "training_task_mode": measure_training(ray, manager, args.rounds),
            "run_through_actor": measure_run(ray, manager, args.calls),
        }
    finally:
        ray.shutdown()
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
