"""Abstract base classes of the three roles: trainer, finder and initializer.

An implementation sets the class attribute ``name`` (its type, such as
``"LOCAL"``) and is constructed as ``cls(config, instance_name)`` by the
:class:`~caikit_mm.ModelManager` that owns it, once per configured instance.
"""

from __future__ import annotations

import abc
import difflib
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..manager import ModelManager
    from ..modules import ModuleBase, ModuleConfig
    from .training import ModelFuture


class ValidationContext:
    """What a type's ``validate_config`` may look at besides its own ``config``.

    Attributes:
        key_path: Dotted path of the instance's ``config`` key, for error messages.
        source: File that last set the instance, or ``""``.
        model_management: The whole, merged ``model_management`` section.
    """

    def __init__(
        self,
        key_path: str,
        source: str,
        model_management: Mapping[str, Any],
        source_of: Callable[[str], str] | None = None,
    ) -> None:
        self.key_path = key_path
        self.source = source
        self.model_management = model_management
        self._source_of = source_of

    def error(self, message: str, key: str = "") -> Exception:
        """Build a ``ConfigError`` for ``key`` of this instance's config.

        The error names the source that set ``key`` when it is known, such as
        an environment variable that overrode one value of a file.
        """
        from ..errors import ConfigError

        path = f"{self.key_path}.{key}" if key else self.key_path
        source = self._source_of(path) if self._source_of else ""
        return ConfigError(message, key_path=path, source=source or self.source)

    def reject_unknown_keys(
        self, config: Mapping[str, Any], known: Iterable[str], type_label: str
    ) -> None:
        """Raise ``ConfigError`` for the first key of ``config`` not in ``known``.

        A misspelled key would otherwise be ignored and its default used, so the
        message suggests the closest known key.
        """
        known_keys = sorted(known)
        for key in sorted(map(str, config)):
            if key in known_keys:
                continue
            close = difflib.get_close_matches(key, known_keys, n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            raise self.error(
                f"unknown key {key!r} for a {type_label}. {hint}Known keys: "
                f"{', '.join(known_keys)}.",
                key,
            )


class _Plugin(abc.ABC):  # noqa: B024 - each role adds its abstract methods
    """Behaviour shared by every role: construction, validation and the owner."""

    name: ClassVar[str] = ""

    def __init__(self, config: Mapping[str, Any], instance_name: str) -> None:
        self.config: Mapping[str, Any] = config
        self.instance_name = instance_name
        self._manager_ref: weakref.ref[ModelManager] | None = None

    @classmethod  # noqa: B027 - an optional hook that accepts anything by default
    def validate_config(
        cls, config: Mapping[str, Any], context: ValidationContext
    ) -> None:
        """Check ``config`` when the configuration is loaded, before any use.

        Raise ``context.error(...)`` for a bad value. The default accepts anything.
        """

    @property
    def manager(self) -> ModelManager:
        """The manager that built this instance, for types that delegate to others."""
        manager = self._manager_ref() if self._manager_ref else None
        if manager is None:
            raise RuntimeError(
                f"{type(self).__name__} {self.instance_name!r} is not attached to a "
                "live ModelManager; get it through ModelManager instead of building it."
            )
        return manager

    def attach(self, manager: ModelManager) -> None:
        """Record the manager that owns this instance (called by the manager)."""
        self._manager_ref = weakref.ref(manager)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} instance {self.instance_name!r}>"


class ModelFinder(_Plugin):
    """Turn a model identifier into the :class:`ModuleConfig` that names its module."""

    @abc.abstractmethod
    def find_model(self, model_path: Any, **kwargs: Any) -> ModuleConfig:
        """Locate the model at ``model_path`` and return its parsed config.

        Raises:
            ModelNotFoundError: This finder cannot locate the model.
        """

    def cache_key(self, model_path: Any, **kwargs: Any) -> Hashable | None:
        """Return what identifies ``model_path`` for the loaded-model cache.

        Two identifiers with the same key load the same model. ``None`` disables
        caching for this identifier. The default is the identifier itself when it
        is hashable.
        """
        try:
            hash(model_path)
        except TypeError:
            return None
        return model_path  # type: ignore[no-any-return]


class ModelInitializer(_Plugin):
    """Turn a :class:`ModuleConfig` into a model ready for inference."""

    @abc.abstractmethod
    def init(self, module_config: ModuleConfig, **kwargs: Any) -> ModuleBase:
        """Load the model described by ``module_config`` and return it."""

    def describe(self, module_config: ModuleConfig) -> dict[str, Any]:
        """Say how :meth:`init` would load ``module_config``, without loading it."""
        return {"initializer": self.instance_name, "type": self.name}

    def release(self, model: Any) -> None:
        """Free what :meth:`init` acquired for ``model``; called on unload."""


class ModelTrainer(_Plugin):
    """Turn raw materials into a saved, loadable model."""

    @abc.abstractmethod
    def train(
        self,
        module_class: type[ModuleBase],
        *args: Any,
        save_path: str | None = None,
        **kwargs: Any,
    ) -> ModelFuture:
        """Start training ``module_class`` and return a future for the job."""

    @abc.abstractmethod
    def get_model_future(self, training_id: str) -> ModelFuture:
        """Return the future of a job this trainer started.

        Raises:
            TrainingNotFoundError: This trainer has no job with that id.
        """
