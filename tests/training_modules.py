"""Small modules that the training tests train, in a thread or in a child process.

This file sits in the tests folder, which pytest puts on ``sys.path``; a spawned
training process gets the parent's ``sys.path``, so it imports this file by the
same name. State that a test reads back crosses the process boundary through
files and saved models, never through globals.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import caikit_mm
from caikit_mm import ModuleBase, ModuleConfig
from caikit_mm.model_management.training import is_cancelled
from caikit_mm.modules import save_config

HANG_GUARD = 60.0  # seconds a blocking train waits at most before it fails


def wait_for_file(path: Path, timeout: float = HANG_GUARD) -> str:
    """Wait until ``path`` exists with some text, and return the text."""
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text(encoding="utf-8"):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return path.read_text(encoding="utf-8")


class TwoPartError(Exception):
    """An exception that pickles but cannot be unpickled: two required arguments."""

    def __init__(self, left: str, right: str) -> None:
        super().__init__(f"{left} and {right}")


@caikit_mm.module(id="training-test-echo", name="Echo")
class Echo(ModuleBase):
    """Stores ``value``; ``train`` returns it unchanged."""

    def __init__(self, value: Any = 1, imported: list[str] | None = None) -> None:
        self.value = value
        self.imported = imported or []

    @classmethod
    def train(cls, value: Any = 1, record_imports: bool = False) -> Echo:
        return cls(value, sorted(sys.modules) if record_imports else None)

    def save(self, model_path: str) -> None:
        save_config(self, model_path, value=self.value, imported=self.imported)

    @classmethod
    def load(cls, model_path: str, module_config: ModuleConfig) -> Echo:
        return cls(module_config["value"], list(module_config.get("imported") or []))


@caikit_mm.module(id="training-test-failing", name="Failing")
class Failing(ModuleBase):
    """``train`` raises the error its arguments ask for."""

    @classmethod
    def train(cls, message: str = "planned failure", unpicklable: bool = False) -> Any:
        if unpicklable:
            raise TwoPartError(message, "a second part")
        raise ValueError(message)


@caikit_mm.module(id="training-test-exit", name="Exiting")
class Exiting(ModuleBase):
    """``train`` ends the process with ``os._exit(code)``, reporting nothing."""

    @classmethod
    def train(cls, code: int = 3) -> Any:
        os._exit(code)


@caikit_mm.module(id="training-test-blocking", name="Blocking")
class Blocking(Echo):
    """``train`` writes ``marker`` with its pid, then waits for ``release``.

    It returns when the file ``release`` exists, or when the job is cancelled
    (seen through ``cancel_event`` or ``is_cancelled``, as ``watch`` says), and
    raises after ``HANG_GUARD`` seconds. ``ignore_sigterm`` makes a child
    process ignore the trainer's SIGTERM.
    """

    @classmethod
    def train(  # type: ignore[override]
        cls,
        marker: str,
        release: str = "",
        value: Any = "released",
        watch: str = "event",
        ignore_sigterm: bool = False,
        cancel_event: threading.Event | None = None,
    ) -> Blocking:
        if ignore_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        Path(marker).write_text(str(os.getpid()), encoding="utf-8")
        deadline = time.monotonic() + HANG_GUARD
        while time.monotonic() < deadline:
            if release and os.path.exists(release):
                return cls(value)
            if watch == "event" and cancel_event is not None and cancel_event.is_set():
                return cls("returned after cancel")
            if watch == "function" and is_cancelled():
                return cls("returned after cancel")
            time.sleep(0.01)
        raise TimeoutError(f"Blocking.train was never released ({release})")


@caikit_mm.module(id="training-test-slow-save", name="SlowSave")
class SlowSave(Echo):
    """``save`` writes part of the model, then marks ``marker`` and blocks.

    In a thread it raises after writing part of the model; in a child process
    it waits to be killed.
    """

    def __init__(self, value: Any = 1, marker: str = "", fail: bool = False) -> None:
        super().__init__(value)
        self.marker = marker
        self.fail = fail

    @classmethod
    def train(cls, marker: str, fail: bool = False) -> SlowSave:  # type: ignore[override]
        return cls("partial", marker, fail)

    def save(self, model_path: str) -> None:
        Path(model_path, "weights.bin").write_bytes(b"\0" * 1024)
        Path(self.marker).write_text(str(os.getpid()), encoding="utf-8")
        if self.fail:
            raise OSError("disk full while saving weights")
        time.sleep(HANG_GUARD)
        raise TimeoutError("SlowSave.save was never killed")


@caikit_mm.module(id="training-test-combine", name="Combine")
class Combine(Echo):
    """``train`` adds the values of models passed as arguments.

    It checks that each argument arrived as a model, not as a stand-in.
    """

    @classmethod
    def train(  # type: ignore[override]
        cls,
        base: Echo,
        others: list[Echo],
        named: dict[str, Echo],
        pair: tuple[Echo, int],
    ) -> Combine:
        models = [base, *others, *named.values(), pair[0]]
        for model in models:
            if not isinstance(model, Echo):
                raise TypeError(f"expected an Echo model, got {model!r}")
        total = sum(model.value for model in models) + pair[1]
        return cls(total)
