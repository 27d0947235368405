"""``ModuleBase``, the ``@module`` decorator and the registry of module ids.

A saved model names the module that can load it by ``module_id`` only. The class
path in ``module_class`` is informational: a model artifact never causes code to
be imported. Module libraries advertise themselves through the entry point group
``caikit_mm.modules``; an entry point's target is a Python module whose import
registers its modules.
"""

from __future__ import annotations

import datetime
import importlib
import inspect
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Final, TypeVar

from ..errors import ModuleNotRegisteredError, ModuleRegistrationError
from .config import ModuleConfig

log = logging.getLogger(__name__)

MODULES_GROUP: Final = "caikit_mm.modules"
LOCAL_BACKEND: Final = "LOCAL"

M = TypeVar("M", bound="type[ModuleBase]")


class ModuleBase:
    """Base class of every module: the code that trains, saves, loads and runs a model.

    Subclasses are registered with :func:`module`, which sets the class attributes
    below. ``load`` may declare a ``module_config`` parameter to receive the parsed
    ``config.yml`` instead of reading it again, and a ``load_backend`` parameter to
    receive the started backend that loads it.
    """

    MODULE_ID: ClassVar[str] = ""
    MODULE_NAME: ClassVar[str] = ""
    MODULE_VERSION: ClassVar[str] = ""
    BACKEND_TYPE: ClassVar[str] = LOCAL_BACKEND
    SUPPORTED_LOAD_BACKENDS: ClassVar[tuple[str, ...]] = (LOCAL_BACKEND,)

    @classmethod
    def load(cls, model_path: str, **kwargs: Any) -> ModuleBase:
        """Load a model saved by this module from the folder ``model_path``."""
        raise NotImplementedError(f"{cls.__qualname__} does not implement load()")

    def save(self, model_path: str) -> None:
        """Save the model into the folder ``model_path``, including ``config.yml``."""
        raise NotImplementedError(
            f"{type(self).__qualname__} does not implement save()"
        )

    @classmethod
    def train(cls, *args: Any, **kwargs: Any) -> ModuleBase:
        """Train a model from raw materials and return it."""
        raise NotImplementedError(f"{cls.__qualname__} does not implement train()")

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Run inference."""
        raise NotImplementedError(f"{type(self).__qualname__} does not implement run()")

    def module_config(self, **extra: Any) -> ModuleConfig:
        """Build the ``ModuleConfig`` that ``save`` writes, with the standard keys.

        Args:
            **extra: Module-specific keys to store beside the standard ones.
        """
        from .. import __version__

        now = str(datetime.datetime.now())
        data = {
            "module_id": self.MODULE_ID,
            "module_class": f"{type(self).__module__}.{type(self).__qualname__}",
            "name": self.MODULE_NAME,
            "version": self.MODULE_VERSION,
            "created": now,
            "saved": now,
            "tracking_id": str(uuid.uuid4()),
            "caikit_mm_version": __version__,
            **extra,
        }
        if self.BACKEND_TYPE != LOCAL_BACKEND:
            data["model_backend"] = self.BACKEND_TYPE
        return ModuleConfig(data)


class _LoadSignature:
    """Which optional keyword arguments a module's ``load`` accepts."""

    __slots__ = ("module_config", "load_backend")

    def __init__(self, load: Callable[..., Any]) -> None:
        params = inspect.signature(load).parameters
        self.module_config = "module_config" in params
        self.load_backend = "load_backend" in params


class ModuleRegistry:
    """Module ids mapped to their implementations, one class per backend type."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._modules: dict[str, dict[str, type[ModuleBase]]] = {}
        self._libraries_loaded = False
        self._libraries: dict[str, str] = {}
        self._signatures: dict[type[ModuleBase], _LoadSignature] = {}

    def add(self, cls: type[ModuleBase]) -> None:
        """Register ``cls`` under its module id and backend type."""
        with self._lock:
            implementations = self._modules.setdefault(cls.MODULE_ID, {})
            existing = implementations.get(cls.BACKEND_TYPE)
            if existing is not None and _qualified(existing) != _qualified(cls):
                raise ModuleRegistrationError(
                    f"Module id {cls.MODULE_ID!r} for backend {cls.BACKEND_TYPE!r} is "
                    f"already registered by {_qualified(existing)}; cannot register "
                    f"{_qualified(cls)}. Give one of them a different id."
                )
            implementations[cls.BACKEND_TYPE] = cls

    def implementations(
        self, module_id: str, source: str = ""
    ) -> dict[str, type[ModuleBase]]:
        """Return the implementations of ``module_id`` by backend type.

        Args:
            module_id: The id to look up.
            source: The model folder or file the id came from, for the error.

        Raises:
            ModuleNotRegisteredError: Not registered, even after importing the
                installed module libraries.
        """
        found = self._modules.get(module_id)
        if found:
            return found
        self.load_libraries()
        found = self._modules.get(module_id)
        if found:
            return found
        if source and not source.endswith(".yml"):
            source = os.path.join(source, "config.yml")
        raise ModuleNotRegisteredError(module_id, self._libraries, source)

    def get(
        self, module_id: str, backend_type: str = LOCAL_BACKEND
    ) -> type[ModuleBase]:
        """Return the class registered for ``module_id`` and ``backend_type``."""
        implementations = self.implementations(module_id)
        try:
            return implementations[backend_type]
        except KeyError:
            raise ModuleNotRegisteredError(
                f"{module_id} (backend {backend_type})", self._libraries
            ) from None

    def ids(self) -> list[str]:
        """List every registered module id."""
        return sorted(self._modules)

    def load_signature(self, cls: type[ModuleBase]) -> _LoadSignature:
        """Return which optional arguments ``cls.load`` accepts, cached per class."""
        signature = self._signatures.get(cls)
        if signature is None:
            signature = self._signatures[cls] = _LoadSignature(cls.load)
        return signature

    def load_libraries(self, reload: bool = False) -> dict[str, str]:
        """Import every module library advertised in ``caikit_mm.modules``, once.

        Args:
            reload: Read the entry points again, for libraries installed since.

        Returns:
            Library labels (name, target and distribution) mapped to ``"ok"`` or
            the import error.
        """
        with self._lock:
            if reload:
                self._libraries_loaded = False
                self._libraries.clear()
            if not self._libraries_loaded:
                self._libraries_loaded = True
                self._import_libraries()
            return dict(self._libraries)

    def _import_libraries(self) -> None:
        import importlib_metadata

        for ep in importlib_metadata.entry_points(group=MODULES_GROUP):
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown"
            label = f"{ep.name} ({ep.value} from {dist})"
            try:
                importlib.import_module(ep.value.partition(":")[0])
            except Exception as exc:
                log.warning("Module library %s failed to import: %r", label, exc)
                self._libraries[label] = f"failed to import: {exc!r}"
            else:
                log.debug("Imported module library %s", label)
                self._libraries[label] = "ok"


def _qualified(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


MODULE_REGISTRY: Final = ModuleRegistry()


def module(
    id: str | None = None,  # noqa: A002 - the caikit decorator's keyword
    name: str | None = None,
    version: str = "0.0.1",
    *,
    backend_type: str = LOCAL_BACKEND,
    base_module: type[ModuleBase] | None = None,
    supported_load_backends: Iterable[str] | None = None,
) -> Callable[[M], M]:
    """Register a :class:`ModuleBase` subclass under a module id.

    Args:
        id: The module id written to ``config.yml``; taken from ``base_module``
            when that is given.
        name: Human-readable module name; the class name by default.
        version: Module version written to ``config.yml``.
        backend_type: The backend this implementation runs on.
        base_module: Another registered module that this class implements for
            ``backend_type``, sharing its module id.
        supported_load_backends: Backend types whose saved artifacts this class
            can load. By default, ``backend_type`` plus, with ``base_module``, the
            backends that the base module loads.

    Raises:
        ModuleRegistrationError: The class is not a ``ModuleBase``, the id is
            missing or not a string, or the id is taken by another class.
    """

    def decorate(cls: M) -> M:
        module_id = _resolve_id(cls, id, base_module)
        cls.MODULE_ID = module_id
        cls.MODULE_NAME = name or (
            base_module.MODULE_NAME if base_module else cls.__name__
        )
        cls.MODULE_VERSION = version
        cls.BACKEND_TYPE = backend_type
        cls.SUPPORTED_LOAD_BACKENDS = _load_backends(
            backend_type, base_module, supported_load_backends
        )
        MODULE_REGISTRY.add(cls)
        return cls

    return decorate


def _load_backends(
    backend_type: str,
    base_module: type[ModuleBase] | None,
    supported: Iterable[str] | None,
) -> tuple[str, ...]:
    if supported is not None:
        return tuple(supported)
    inherited = base_module.SUPPORTED_LOAD_BACKENDS if base_module else ()
    return tuple(dict.fromkeys((backend_type, *inherited)))


def _resolve_id(
    cls: type[Any], module_id: str | None, base_module: type[ModuleBase] | None
) -> str:
    if not (isinstance(cls, type) and issubclass(cls, ModuleBase)):
        raise ModuleRegistrationError(
            f"@module can only decorate ModuleBase subclasses, got {cls!r}. "
            "Derive the class from caikit_mm.ModuleBase."
        )
    if base_module is not None:
        if module_id is not None and module_id != base_module.MODULE_ID:
            raise ModuleRegistrationError(
                f"{cls.__qualname__} gives id {module_id!r} but implements "
                f"{base_module.__qualname__} ({base_module.MODULE_ID!r}); drop the id."
            )
        return base_module.MODULE_ID
    if not isinstance(module_id, str) or not module_id:
        raise ModuleRegistrationError(
            f"@module on {cls.__qualname__} needs a non-empty string id, got "
            f"{module_id!r}. Pass id='<uuid or name>'."
        )
    return module_id


def save_config(model: ModuleBase, model_path: str, **extra: Any) -> None:
    """Write the standard ``config.yml`` of ``model`` plus ``extra`` keys."""
    os.makedirs(model_path, exist_ok=True)
    model.module_config(**extra).save(model_path)
