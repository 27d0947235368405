"""Module backends: the runtimes that modules run on, started lazily and once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from ..registry import PluginRegistry

log = logging.getLogger(__name__)


class BackendBase:
    """A runtime that modules run on, such as this process or a remote service.

    Subclasses set ``name`` (the backend type) and implement ``_start`` and
    ``_stop``. :meth:`start` and :meth:`stop` run them at most once each, even when
    called from several threads.

    Args:
        config: The backend's ``config`` mapping from ``backend_priority``.
    """

    name: ClassVar[str] = ""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config = dict(config or {})
        self._lock = threading.Lock()
        self._started = False

    @property
    def is_started(self) -> bool:
        """Whether :meth:`start` has completed and :meth:`stop` has not run since."""
        return self._started

    def start(self) -> None:
        """Start the backend unless it is already running."""
        if self._started:
            return
        with self._lock:
            if not self._started:
                log.debug("Starting backend %s", self.name)
                self._start()
                self._started = True

    def stop(self) -> None:
        """Stop the backend if it is running."""
        with self._lock:
            if self._started:
                log.debug("Stopping backend %s", self.name)
                self._stop()
                self._started = False

    def _start(self) -> None:
        """Acquire the backend's resources; the default has none."""

    def _stop(self) -> None:
        """Release what ``_start`` acquired; the default has nothing to release."""


class LocalBackend(BackendBase):
    """Modules that run in this Python process."""

    name: ClassVar[str] = "LOCAL"


BACKENDS: Final[PluginRegistry[BackendBase]] = PluginRegistry(
    "backend",
    "caikit_mm.backends",
    BackendBase,
    {"LOCAL": "caikit_mm.modules.backends:LocalBackend"},
)
