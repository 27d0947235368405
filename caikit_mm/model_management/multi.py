"""The MULTI finder and initializer: other named instances, tried in order.

The first instance that succeeds wins. When every one fails, the error lists
each instance's name and error. Unknown names, an empty list and cycles, direct
or through other MULTI instances, are rejected when the configuration loads.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..errors import InitializationFailedError, ModelNotFoundError
from .base import ModelFinder, ModelInitializer, ValidationContext

if TYPE_CHECKING:
    from ..modules import ModuleBase, ModuleConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

Attempt = tuple[str, BaseException]


class MultiModelFinder(ModelFinder):
    """Try the finders named in ``finder_priority`` in order.

    Config:
        finder_priority: Names of other finder instances, most preferred first.
    """

    name: ClassVar[str] = "MULTI"
    priority_key: ClassVar[str] = "finder_priority"

    @classmethod
    def validate_config(
        cls, config: Mapping[str, Any], context: ValidationContext
    ) -> None:
        context.reject_unknown_keys(config, (cls.priority_key,), f"{cls.name} finder")
        validate_priority(config, context, "finders", cls.priority_key)

    @property
    def priority(self) -> list[str]:
        """The names of the finders tried, in order."""
        return list(self.config[self.priority_key])

    def cache_key(self, model_path: Any, **kwargs: Any) -> Hashable | None:
        """Return the key of the first finder in the list that gives one."""
        for name in self.priority:
            try:
                key = self.manager.get_finder(name).cache_key(model_path, **kwargs)
            except Exception as exc:  # a finder that cannot key the path is skipped
                log.debug(
                    "Finder %r gives no cache key for %r: %r", name, model_path, exc
                )
                continue
            if key is not None:
                return key
        return None

    def find_model(self, model_path: Any, **kwargs: Any) -> ModuleConfig:
        """Return the config from the first finder that locates the model.

        Raises:
            ModelNotFoundError: Every finder failed; ``attempts`` contains each
                finder's name and error, and the message lists them.
        """
        attempts: list[Attempt] = []
        for name in self.priority:
            finder = self.manager.get_finder(name)
            try:
                found = finder.find_model(model_path, **kwargs)
            except Exception as exc:
                log.debug("Finder %r could not find %r: %r", name, model_path, exc)
                attempts.append((name, exc))
                continue
            log.debug(
                "Finder %r found %r for MULTI %r", name, model_path, self.instance_name
            )
            return found
        error = ModelNotFoundError(
            f"No finder of MULTI finder {self.instance_name!r} found "
            f"{model_path!r:.120}: {describe_attempts(attempts)}. Fix the error "
            "of the finder that should find it, or add a finder to "
            f"{self.priority_key}.",
            model_path=model_path,
            finder=self.instance_name,
        )
        error.attempts = attempts  # type: ignore[attr-defined]
        raise error


class MultiModelInitializer(ModelInitializer):
    """Try the initializers named in ``initializer_priority`` in order.

    Config:
        initializer_priority: Names of other initializer instances, most
            preferred first.
    """

    name: ClassVar[str] = "MULTI"
    priority_key: ClassVar[str] = "initializer_priority"

    def __init__(self, config: Mapping[str, Any], instance_name: str) -> None:
        super().__init__(config, instance_name)
        # Which child loaded each model, so release() reaches the right one.
        self._owners: weakref.WeakKeyDictionary[Any, ModelInitializer] = (
            weakref.WeakKeyDictionary()
        )
        self._strong_owners: dict[int, tuple[Any, ModelInitializer]] = {}
        self._lock = threading.Lock()

    @classmethod
    def validate_config(
        cls, config: Mapping[str, Any], context: ValidationContext
    ) -> None:
        context.reject_unknown_keys(
            config, (cls.priority_key,), f"{cls.name} initializer"
        )
        validate_priority(config, context, "initializers", cls.priority_key)

    @property
    def priority(self) -> list[str]:
        """The names of the initializers tried, in order."""
        return list(self.config[self.priority_key])

    def init(self, module_config: ModuleConfig, **kwargs: Any) -> ModuleBase:
        """Return the model from the first initializer that loads it.

        Raises:
            InitializationFailedError: Every initializer failed; ``attempts``
                holds each one's name and error, and the message lists them.
        """
        child, model = self._first_success(
            lambda initializer: initializer.init(module_config, **kwargs),
            module_config,
        )
        self._remember(model, child)
        return model

    def describe(self, module_config: ModuleConfig) -> dict[str, Any]:
        child, described = self._first_success(
            lambda initializer: initializer.describe(module_config), module_config
        )
        return {
            "initializer": self.instance_name,
            "type": self.name,
            "selected": child.instance_name,
            "selected_description": described,
        }

    def release(self, model: Any) -> None:
        """Release ``model`` through the initializer that loaded it."""
        with self._lock:
            owner = self._forget(model)
        if owner is not None:
            owner.release(model)

    def _first_success(
        self, call: Callable[[ModelInitializer], T], module_config: ModuleConfig
    ) -> tuple[ModelInitializer, T]:
        attempts: list[Attempt] = []
        for name in self.priority:
            initializer = self.manager.get_initializer(name)
            try:
                return initializer, call(initializer)
            except Exception as exc:
                log.debug(
                    "Initializer %r failed for %s: %r",
                    name,
                    module_config.module_id,
                    exc,
                )
                attempts.append((name, exc))
        raise InitializationFailedError(
            f"No initializer of MULTI initializer {self.instance_name!r} loaded "
            f"module {module_config.module_id!r} from "
            f"{module_config.model_path or 'an in-memory config'}: "
            f"{describe_attempts(attempts)}. Fix the error of the initializer that "
            f"should load it, or add one to {self.priority_key}.",
            attempts=attempts,
        )

    def _remember(self, model: Any, child: ModelInitializer) -> None:
        with self._lock:
            try:
                self._owners[model] = child
            except TypeError:
                # Not weakly referenceable: kept until release().
                self._strong_owners[id(model)] = (model, child)

    def _forget(self, model: Any) -> ModelInitializer | None:
        try:
            owner = self._owners.pop(model, None)
        except TypeError:
            owner = None
        if owner is None:
            entry = self._strong_owners.pop(id(model), None)
            owner = entry[1] if entry is not None else None
        return owner


def describe_attempts(attempts: list[Attempt]) -> str:
    """List each attempt as ``name: ErrorType: message``."""
    # Messages end in a period, which would read ".;" before the separator.
    return "; ".join(
        f"{name}: {type(exc).__name__}: {str(exc).rstrip('.')}"
        for name, exc in attempts
    )


def validate_priority(
    config: Mapping[str, Any],
    context: ValidationContext,
    section: str,
    key: str,
) -> None:
    """Check a MULTI instance's priority list: a non-empty list of configured
    instance names of the same role, with no cycle through other MULTI
    instances."""
    names = config.get(key)
    instances = context.model_management.get(section) or {}
    if not isinstance(names, list) or not names:
        raise context.error(
            f"{key} must be a non-empty list of {section[:-1]} names, got "
            f"{names!r}. List the instances to try, most preferred first.",
            key,
        )
    for index, name in enumerate(names):
        if not isinstance(name, str) or name not in instances:
            raise context.error(
                f"{key} entry {name!r} is not a configured {section[:-1]}; "
                f"configured: {', '.join(sorted(map(str, instances)))}. Use one "
                "of these names, or add the instance.",
                f"{key}.{index}",
            )
    own_name = context.key_path.split(".")[-2]
    cycle = _find_cycle(own_name, instances, key)
    if cycle:
        raise context.error(
            f"{key} forms a cycle: {' -> '.join(cycle)}. A MULTI {section[:-1]} "
            "must not reach itself through its list.",
            key,
        )


def _find_cycle(start: str, instances: Mapping[str, Any], key: str) -> list[str]:
    """Return a path from ``start`` back to ``start`` through MULTI instances,
    or an empty list."""
    path = [start]

    def visit(name: str, seen: set[str]) -> bool:
        entry = instances.get(name)
        if not isinstance(entry, Mapping) or entry.get("type") != "MULTI":
            return False
        children = (entry.get("config") or {}).get(key) or []
        for child in children:
            if not isinstance(child, str):
                continue
            path.append(child)
            if child == start:
                return True
            if child not in seen and visit(child, seen | {child}):
                return True
            path.pop()
        return False

    return path if visit(start, {start}) else []
