"""The trivial module that ``bench_training.py`` trains.

It lives in its own file, so a spawned training process imports this file and
``caikit_mm`` and nothing of the benchmark script.
"""

from __future__ import annotations

import caikit_mm
from caikit_mm import ModuleBase, ModuleConfig
from caikit_mm.modules import save_config

MODULE_ID = "caikit-mm-bench-training-trivial"


@caikit_mm.module(id=MODULE_ID, name="TrainingTrivial", version="0.0.1")
class TrainingTrivial(ModuleBase):
    """A module whose only state is one integer in ``config.yml``."""

    def __init__(self, value: int = 1) -> None:
        self.value = value

    @classmethod
    def train(cls, value: int = 1) -> TrainingTrivial:
        return cls(value)

    def save(self, model_path: str) -> None:
        save_config(self, model_path, value=self.value)

    @classmethod
    def load(cls, model_path: str, module_config: ModuleConfig) -> TrainingTrivial:
        return cls(module_config["value"])
