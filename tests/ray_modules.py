"""Modules that the Ray initializer tests load inside Ray actors.

Ray actors import this file by name: the Ray test instances put the tests
folder on the workers' ``PYTHONPATH``. What a test reads back from an actor
crosses the process boundary through return values and files.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import caikit_mm
from caikit_mm import ModuleBase, ModuleConfig
from caikit_mm.modules import save_config

HANG_GUARD = 60.0  # seconds a blocking train waits at most before it fails


class LoadFailure(Exception):
    """The error that :class:`BrokenLoad` raises while loading."""


@caikit_mm.module(id="ray-test-scaler", name="Scaler", version="1.2.0")
class Scaler(ModuleBase):
    """Multiplies its inputs by ``factor``; reports the pid that runs it."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def run(self, values: list[float]) -> list[float]:
        return [value * self.factor for value in values]

    def where(self) -> int:
        return os.getpid()

    def fail(self, message: str) -> None:
        raise KeyError(message)

    def save(self, model_path: str) -> None:
        save_config(self, model_path, factor=self.factor)

    @classmethod
    def load(cls, model_path: str, module_config: ModuleConfig) -> Scaler:
        return cls(float(module_config["factor"]))

    @classmethod
    def train(cls, factor: float = 2.0) -> Scaler:
        return cls(factor)


@caikit_mm.module(id="ray-test-broken-load", name="BrokenLoad")
class BrokenLoad(ModuleBase):
    """``load`` appends a line to ``attempts`` and raises :class:`LoadFailure`."""

    def save(self, model_path: str) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, model_path: str, module_config: ModuleConfig) -> Any:
        with Path(module_config["attempts"]).open("a", encoding="utf-8") as stream:
            stream.write(f"{os.getpid()}\n")
        raise LoadFailure(f"weights in {model_path} are corrupt")


@caikit_mm.module(id="ray-test-interruptible", name="Interruptible")
class Interruptible(Scaler):
    """``train`` writes ``marker``, then waits; on the way out it writes the
    name of the exception that ended it to ``stopped``."""

    @classmethod
    def train(cls, marker: str, stopped: str) -> Interruptible:  # type: ignore[override]
        Path(marker).write_text(str(os.getpid()), encoding="utf-8")
        try:
            deadline = time.monotonic() + HANG_GUARD
            while time.monotonic() < deadline:
                time.sleep(0.01)
        except BaseException as exc:
            Path(stopped).write_text(type(exc).__name__, encoding="utf-8")
            raise
        raise TimeoutError("Interruptible.train was never interrupted")


@caikit_mm.module(id="ray-test-finishes-after-cancel", name="FinishesAfterCancel")
class FinishesAfterCancel(Scaler):
    """``train`` writes ``marker``, then waits. The exception that a cancel
    raises in it (``KeyboardInterrupt`` in a task, ``SystemExit`` in a job) is
    written to ``stopped`` and swallowed, so ``train`` returns a model anyway."""

    @classmethod
    def train(  # type: ignore[override]
        cls, marker: str, stopped: str
    ) -> FinishesAfterCancel:
        Path(marker).write_text(str(os.getpid()), encoding="utf-8")
        try:
            deadline = time.monotonic() + HANG_GUARD
            while time.monotonic() < deadline:
                time.sleep(0.01)
        except BaseException as exc:
            Path(stopped).write_text(type(exc).__name__, encoding="utf-8")
            return cls(3.0)
        raise TimeoutError("FinishesAfterCancel.train was never interrupted")


def save_scaler(folder: Path, factor: float) -> str:
    """Save a :class:`Scaler` model into ``folder`` and return its path."""
    Scaler(factor).save(str(folder))
    return str(folder)


def save_broken(folder: Path, attempts: Path) -> str:
    """Save a model whose load fails, counting attempts in ``attempts``."""
    folder.mkdir(parents=True, exist_ok=True)
    save_config(BrokenLoad(), str(folder), attempts=str(attempts))
    return str(folder)


class FailsInWorker:
    """Pickles here, but unpickling it raises, so a Ray task that receives it
    fails before its function runs."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_raise_on_unpickle, ("FailsInWorker cannot be unpickled",))


def _raise_on_unpickle(message: str) -> None:
    raise RuntimeError(message)
