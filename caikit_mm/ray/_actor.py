"""The Ray actor that hosts one loaded model for the RAY initializer.

This module imports Ray at the top: only the RAY initializer imports it, after
checking that Ray is installed, and Ray workers import it to run the actor.

The actor loads the model with the LOCAL initializer's logic, from the same
``ModuleConfig`` a local load would use. Its methods run in three concurrency
groups: model calls in the default group (``max_concurrency`` threads), the
load in its own group, and holder bookkeeping in a ``control`` group, so that a
long model call never delays an attach or a release.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any, Final

import ray

from ..errors import RemoteModelError
from ..model_management._subprocess_worker import resolve
from ..model_management.local_initializer import LocalModelInitializer
from ..modules import MODULE_REGISTRY, ModuleBase, ModuleConfig

log = logging.getLogger(__name__)

CONCURRENCY_GROUPS: Final = {"control": 1, "load": 1}

# A reference to a module class: ("import", python module, qualified
# name) for an importable class, or ("pickle", cloudpickle bytes) for one
# defined in a script's __main__.
ModuleRef = tuple[Any, ...]


class ModelHost:
    """Holds one model and runs its methods for the proxies that attached.

    Args:
        module_config: The finder's output for the model.
        module_refs: The module classes the caller knows for the module id,
            registered here before loading.
        local_config: Config of the LOCAL initializer that loads the model.
        load_kwargs: Keyword arguments of the load.
    """

    def __init__(
        self,
        module_config: ModuleConfig,
        module_refs: Sequence[ModuleRef],
        local_config: dict[str, Any],
        load_kwargs: dict[str, Any],
    ) -> None:
        self._module_config = module_config
        self._module_refs = list(module_refs)
        self._local_config = local_config
        self._load_kwargs = load_kwargs
        self._model: ModuleBase | None = None
        self._methods: frozenset[str] = frozenset()
        self._load_lock = threading.Lock()
        self._holders: set[str] = set()
        self._closing = False
        self._holders_lock = threading.Lock()

    @ray.method(concurrency_group="control")
    def attach(self, holder: str) -> bool:
        """Record a proxy; ``False`` when the last holder is already releasing."""
        with self._holders_lock:
            if self._closing:
                return False
            self._holders.add(holder)
            return True

    @ray.method(concurrency_group="control")
    def detach(self, holder: str) -> int:
        """Forget a proxy and return how many holders remain.

        At zero the actor refuses new holders, because its releaser kills it.
        """
        with self._holders_lock:
            self._holders.discard(holder)
            if not self._holders:
                self._closing = True
            return len(self._holders)

    @ray.method(concurrency_group="load")
    def load(self) -> dict[str, Any]:
        """Load the model once and describe it and this actor.

        Raises:
            Exception: The load's error, or a ``RemoteModelError`` naming its
                type and message when it cannot be pickled as it is.
        """
        try:
            self._ensure_loaded()
        except Exception as exc:
            raise portable_error(exc) from None
        return self._describe()

    @ray.method(concurrency_group="control")
    def describe(self) -> dict[str, Any]:
        """Describe the model and where this actor runs."""
        return self._describe()

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run a public method of the model and return its result.

        Raises:
            AttributeError: ``method`` is not a public method of the model.
            Exception: The method's own error, unchanged.
        """
        model = self._model if self._model is not None else self._ensure_loaded()
        if method not in self._methods:
            raise AttributeError(
                f"{type(model).__qualname__} has no public method {method!r}; "
                f"methods: {', '.join(sorted(self._methods))}."
            )
        try:
            return getattr(model, method)(*args, **kwargs)
        except Exception as exc:
            raise portable_error(exc) from None

    def _ensure_loaded(self) -> ModuleBase:
        with self._load_lock:
            if self._model is None:
                _register_modules(self._module_refs)
                initializer = LocalModelInitializer(self._local_config, "ray-actor")
                model = initializer.init(self._module_config, **self._load_kwargs)
                self._methods = frozenset(public_methods(type(model)))
                self._model = model
                log.info(
                    "Loaded %s (module %s) in Ray actor %s",
                    self._module_config.model_path,
                    self._module_config.module_id,
                    ray.get_runtime_context().get_actor_id(),
                )
            return self._model

    def _describe(self) -> dict[str, Any]:
        context = ray.get_runtime_context()
        model = self._model
        cls = type(model) if model is not None else None
        return {
            "module_id": self._module_config.module_id,
            "module_name": getattr(cls, "MODULE_NAME", ""),
            "module_version": getattr(cls, "MODULE_VERSION", ""),
            "module_class": f"{cls.__module__}.{cls.__qualname__}" if cls else "",
            "methods": sorted(self._methods),
            "model_path": self._module_config.model_path,
            "loaded": model is not None,
            "actor_id": context.get_actor_id(),
            "actor_name": context.get_actor_name() or "",
            "namespace": context.namespace,
            "node_id": context.get_node_id(),
            "node_ip": node_ip_address(),
            "pid": os.getpid(),
        }


def portable_error(error: Exception) -> Exception:
    """Return ``error`` when a pickled copy has its type and message, else a
    ``RemoteModelError`` that names them, so the caller never gets Ray's
    ``UnserializableException`` in its place."""
    import pickle
    import traceback

    try:
        copy = pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - any failure means "not portable"
        copy = None
    if type(copy) is type(error) and str(copy) == str(error):
        return error
    error_type = type(error)
    return RemoteModelError(
        f"{error_type.__module__}.{error_type.__qualname__}: {error} (raised in the "
        "Ray actor; the exception could not be sent back as it is)\n"
        + "".join(traceback.format_exception(error))
    )


def node_ip_address() -> str:
    """Return the address of the Ray node this process belongs to."""
    # NOTE: private Ray API (2.60); ray.util.get_node_ip_address() returns the
    # machine's address instead, which differs from a node started with
    # --node-ip-address.
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    address = getattr(getattr(worker, "global_worker", None), "node_ip_address", "")
    if address:
        return str(address)
    return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]


def _register_modules(refs: Sequence[ModuleRef]) -> None:
    # Importing a class's module runs its @module decorator; a class pickled by
    # value arrives without that, so it is registered explicitly.
    for ref in refs:
        if ref[0] == "import":
            cls = resolve(ref[1], ref[2])
        else:
            cls = ray.cloudpickle.loads(ref[1])
        MODULE_REGISTRY.add(cls)


def public_methods(cls: type[Any]) -> list[str]:
    """List the instance methods of ``cls`` whose names do not start with ``_``."""
    names = []
    for name in dir(cls):
        if name.startswith("_"):
            continue
        attribute = inspect.getattr_static(cls, name, None)
        if isinstance(attribute, (classmethod, staticmethod, property)):
            continue
        if callable(attribute):
            names.append(name)
    return names


@functools.lru_cache(maxsize=1)
def host_actor_class() -> Any:
    """Return :class:`ModelHost` as a Ray actor class."""
    return ray.remote(concurrency_groups=CONCURRENCY_GROUPS)(  # type: ignore[call-overload]
        ModelHost
    )
