"""The LOCAL initializer: load a module in this process on a prioritized backend."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from ..errors import ModelFormatError, NoMatchingBackendError
from ..modules import (
    BACKENDS,
    LOCAL_BACKEND,
    MODULE_REGISTRY,
    BackendBase,
    ModuleBase,
    ModuleConfig,
)
from .base import ModelInitializer, ValidationContext

log = logging.getLogger(__name__)

DEFAULT_PRIORITY: tuple[dict[str, Any], ...] = ({"type": LOCAL_BACKEND, "config": {}},)


class LocalModelInitializer(ModelInitializer):
    """Load models in this process with the first backend that fits.

    Config:
        backend_priority: List of ``{type, config}`` backends, most preferred
            first; ``[{type: LOCAL}]`` by default. A backend is chosen when the
            module has an implementation for it that supports the backend that
            saved the artifact (``model_backend`` in ``config.yml``, ``LOCAL`` when
            absent).
    """

    name: ClassVar[str] = "LOCAL"

    def __init__(self, config: Mapping[str, Any], instance_name: str) -> None:
        super().__init__(config, instance_name)
        priority = config.get("backend_priority") or DEFAULT_PRIORITY
        self._priority = [(b["type"], dict(b.get("config") or {})) for b in priority]
        self._backends: dict[int, BackendBase] = {}
        self._lock = threading.Lock()

    @classmethod
    def validate_config(
        cls, config: Mapping[str, Any], context: ValidationContext
    ) -> None:
        context.reject_unknown_keys(config, ("backend_priority",), "LOCAL initializer")
        priority = config.get("backend_priority")
        if priority is None:
            return
        if not isinstance(priority, list) or not priority:
            raise context.error(
                f"backend_priority must be a non-empty list of {{type, config}} "
                f"entries, got {priority!r}. Use for example [{{type: LOCAL}}].",
                "backend_priority",
            )
        for index, entry in enumerate(priority):
            _validate_backend_entry(entry, context, f"backend_priority.{index}")

    def init(self, module_config: ModuleConfig, **kwargs: Any) -> ModuleBase:
        """Load the model with the first backend in priority order that fits.

        Raises:
            ModuleNotRegisteredError: No installed library registers the module id.
            NoMatchingBackendError: No configured backend can load the module.
            Exception: The module's own load error, unchanged.
        """
        cls, backend = self._select(module_config)
        backend.start()
        return self._load(cls, backend, module_config, kwargs)

    def describe(self, module_config: ModuleConfig) -> dict[str, Any]:
        cls, backend = self._select(module_config)
        return {
            "initializer": self.instance_name,
            "type": self.name,
            "module_class": f"{cls.__module__}.{cls.__qualname__}",
            "backend": backend.name,
        }

    def _select(
        self, module_config: ModuleConfig
    ) -> tuple[type[ModuleBase], BackendBase]:
        implementations = MODULE_REGISTRY.implementations(
            module_config.module_id, module_config.model_path or ""
        )
        model_backend = module_config.get("model_backend") or LOCAL_BACKEND
        for index, (backend_type, _) in enumerate(self._priority):
            cls = implementations.get(backend_type)
            if cls is not None and model_backend in cls.SUPPORTED_LOAD_BACKENDS:
                return cls, self._backend(index)
        tried = [backend_type for backend_type, _ in self._priority]
        raise NoMatchingBackendError(
            f"No backend can load module {module_config.module_id!r} saved by backend "
            f"{model_backend!r} (from {_source(module_config)}). Initializer "
            f"{self.instance_name!r} tries backends {tried}; the module has "
            + ", ".join(
                f"{b} (loads {list(c.SUPPORTED_LOAD_BACKENDS)})"
                for b, c in sorted(implementations.items())
            )
            + ". Add a matching backend to backend_priority, or install the module's "
            "implementation for one of those backends."
        )

    def _backend(self, index: int) -> BackendBase:
        backend = self._backends.get(index)
        if backend is None:
            with self._lock:
                backend = self._backends.get(index)
                if backend is None:
                    backend_type, config = self._priority[index]
                    backend = BACKENDS.get(backend_type)(config)
                    self._backends[index] = backend
        return backend

    def _load(
        self,
        cls: type[ModuleBase],
        backend: BackendBase,
        module_config: ModuleConfig,
        kwargs: dict[str, Any],
    ) -> ModuleBase:
        if module_config.model_path is None:
            raise ModelFormatError(
                f"Module config for {module_config.module_id!r} has no model_path, so "
                "there is nothing to load. Use ModuleConfig.load(folder)."
            )
        signature = MODULE_REGISTRY.load_signature(cls)
        if signature.module_config:
            kwargs["module_config"] = module_config
        if signature.load_backend:
            kwargs["load_backend"] = backend
        log.debug(
            "Loading %s with %s on backend %s",
            module_config.model_path,
            cls,
            backend.name,
        )
        return cls.load(module_config.model_path, **kwargs)


def _source(module_config: ModuleConfig) -> str:
    if module_config.model_path:
        return f"{module_config.model_path}/config.yml"
    return "an in-memory module config"


def _validate_backend_entry(entry: Any, context: ValidationContext, key: str) -> None:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("type"), str):
        raise context.error(
            f"each backend_priority entry needs a string 'type', got {entry!r}. "
            "Write it as {type: LOCAL, config: {}}.",
            key,
        )
    if not BACKENDS.has(entry["type"]):
        raise context.error(
            f"unknown backend type {entry['type']!r}; known backends: "
            f"{', '.join(BACKENDS.names())}. Install the package that provides it "
            "through the 'caikit_mm.backends' entry point group.",
            f"{key}.type",
        )
    backend_config = entry.get("config")
    if backend_config is not None and not isinstance(backend_config, Mapping):
        raise context.error(
            f"a backend's config must be a mapping, got {backend_config!r}.",
            f"{key}.config",
        )
