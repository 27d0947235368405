"""Trivial caikit module that the caikit baseline benchmark loads and trains.

Loading reads config.yml and nothing else, so the benchmark times caikit's model
management and not the model. The module lives in its own file so that a
subprocess started with the spawn start method can import it by name.
"""

from __future__ import annotations

import threading
from pathlib import Path

import caikit
from caikit.core import ModuleBase, ModuleConfig
from caikit.core.modules import ModuleSaver

MODULE_ID = "caikit-mm-bench-trivial"
MODULE_NAME = "CaikitMmBenchTrivial"
MODULE_VERSION = "0.0.1"

_load_calls = 0
_load_calls_lock = threading.Lock()


def load_call_count() -> int:
    """Return how many times TrivialModule.load has run in this process."""
    with _load_calls_lock:
        return _load_calls


def write_model_folder(path: Path, value: int = 1) -> None:
    """Create a model folder whose config.yml names this module."""
    path.mkdir(parents=True, exist_ok=True)
    config_text = (
        f"module_id: {MODULE_ID}\n"
        f"name: {MODULE_NAME}\n"
        f"version: {MODULE_VERSION}\n"
        f"value: {value}\n"
    )
    (path / "config.yml").write_text(config_text, encoding="utf-8")


@caikit.module(id=MODULE_ID, name=MODULE_NAME, version=MODULE_VERSION)
class TrivialModule(ModuleBase):  # type: ignore[misc]  # caikit has no type hints
    """Module whose only state is one integer stored in config.yml."""

    def __init__(self, value: int = 1) -> None:
        super().__init__()
        self.value = value

    @classmethod
    def load(cls, model_path: str | ModuleConfig, **kwargs: object) -> TrivialModule:
        # caikit.load passes the ModuleConfig that its finder already read.
        # A direct call passes a folder path, and ModuleConfig.load reads
        # config.yml from it.
        global _load_calls
        config = ModuleConfig.load(model_path)
        with _load_calls_lock:
            _load_calls += 1
        return cls(int(config.value))

    def save(self, model_path: str, **kwargs: object) -> None:
        with ModuleSaver(self, model_path=model_path) as saver:
            saver.update_config({"value": self.value})

    @classmethod
    def train(cls, value: int = 1) -> TrivialModule:
        return cls(value)
