"""``ModelManager``: named trainers, finders and initializers, and loaded models."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from .config import ConfigSource, ManagerConfig, global_config, load_config
from .errors import TrainingNotFoundError, UnknownInstanceError
from .model_management import REGISTRIES, ModelFinder, ModelInitializer, ModelTrainer
from .model_management._training_common import (
    TrainingIndex,
    check_save_path_type,
    trainer_name_from_id,
    unknown_training,
)
from .model_management.base import ValidationContext, _Plugin
from .model_management.training import ModelFuture
from .modules import ModuleBase, ModuleConfig
from .registry import BUILTIN, PluginRegistry

log = logging.getLogger(__name__)

P = TypeVar("P", bound=_Plugin)


class _Factory(Generic[P]):
    """The named instances of one role, built once each on first use."""

    def __init__(self, manager: ModelManager, role: str, config: ManagerConfig) -> None:
        self._manager = manager
        self.role = role
        self._config = config
        self._registry: PluginRegistry[P] = REGISTRIES[role]
        self._instances: dict[str, P] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return sorted(self._config.section(self.role))

    def get(self, name: str | P | None) -> P:
        """Return the instance called ``name`` ("default" for ``None``), or ``name``
        itself when it is already an instance of the role."""
        if name is None:
            name = "default"
        elif not isinstance(name, str):
            return self._check_instance(name)
        instance = self._instances.get(name)
        if instance is None:
            with self._lock:
                instance = self._instances.get(name)
                if instance is None:
                    instance = self._instances[name] = self._build(name)
        return instance

    def built(self) -> list[P]:
        with self._lock:
            return list(self._instances.values())

    def _check_instance(self, candidate: Any) -> P:
        if isinstance(candidate, self._registry.base):
            return candidate  # type: ignore[no-any-return]
        raise TypeError(
            f"{self.role} must be an instance name or a "
            f"{self._registry.base.__name__}, "
            f"got {type(candidate).__name__}: {candidate!r:.60}. Pass one of: "
            f"{', '.join(self.names())}."
        )

    def _build(self, name: str) -> P:
        section = self._config.section(self.role)
        if name not in section:
            raise UnknownInstanceError(self.role, name, section)
        type_name, config = self._config.instance(self.role, name)
        cls = self._registry.get(type_name)
        if self._registry.source_of(type_name) != BUILTIN:
            key_path = f"model_management.{self.role}s.{name}"
            context = ValidationContext(
                f"{key_path}.config",
                self._config.source_of(key_path),
                self._config.data["model_management"],
                self._config.source_of,
            )
            cls.validate_config(config, context)
        instance = cls(dict(config), name)
        instance.attach(self._manager)
        log.debug("Built %s %r of type %s", self.role, name, type_name)
        return instance


class _Pending:
    """A load in progress that other threads asking for the same model wait on.

    The owner holds ``lock`` from creation until the load ends; a waiter
    acquires and releases it to wait. A plain lock is cheaper to create than an
    Event, and one is created per load.
    """

    __slots__ = ("lock", "model", "error")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()
        self.model: Any = None
        self.error: BaseException | None = None

    def wait(self) -> None:
        with self.lock:
            pass


class ModelManager:
    """Train, find and initialize models through named, configured plugins.

    Args:
        config: A mapping or the path of a YAML file, merged over the packaged
            defaults, ``CAIKIT_MM_CONFIG_FILES`` and environment variables. With
            ``None`` the manager uses the process-wide configuration. A manager's
            own config never changes the process-wide one.

    Raises:
        ConfigError: The configuration is invalid.
    """

    def __init__(self, config: ConfigSource | ManagerConfig | None = None) -> None:
        if config is None:
            self.config = global_config()
        elif isinstance(config, ManagerConfig):
            self.config = config
        else:
            self.config = load_config(config)
        self._trainers: _Factory[ModelTrainer] = _Factory(self, "trainer", self.config)
        self._finders: _Factory[ModelFinder] = _Factory(self, "finder", self.config)
        self._initializers: _Factory[ModelInitializer] = _Factory(
            self, "initializer", self.config
        )
        self._lock = threading.Lock()
        self._models: dict[Hashable, Any] = {}
        self._aliases: dict[Hashable, Any] = {}
        self._alias_keys: dict[Hashable, list[Hashable]] = {}
        self._pending: dict[Hashable, _Pending] = {}
        self._trainings = TrainingIndex()

    # Named instances ----------------------------------------------------------

    def get_finder(self, name: str | ModelFinder | None = None) -> ModelFinder:
        """Return the finder called ``name`` ("default" for ``None``).

        Raises:
            UnknownInstanceError: No finder of that name is configured.
        """
        return self._finders.get(name)

    def get_initializer(
        self, name: str | ModelInitializer | None = None
    ) -> ModelInitializer:
        """Return the initializer called ``name`` ("default" for ``None``)."""
        return self._initializers.get(name)

    def get_trainer(self, name: str | ModelTrainer | None = None) -> ModelTrainer:
        """Return the trainer called ``name`` ("default" for ``None``)."""
        return self._trainers.get(name)

    # Training -----------------------------------------------------------------

    def train(
        self,
        module: type[ModuleBase] | str,
        *args: Any,
        trainer: str | ModelTrainer | None = None,
        save_path: str | os.PathLike[str] | None = None,
        save_with_id: bool = False,
        model_name: str | None = None,
        wait: bool = False,
        training_id: str | None = None,
        overwrite: bool = False,
        **kwargs: Any,
    ) -> ModelFuture:
        """Start training a module and return the job's future at once.

        Args:
            module: A :class:`ModuleBase` subclass, or a registered module id.
            *args: Positional arguments of the module's ``train``.
            trainer: Trainer instance name or instance; ``None`` means "default".
            save_path: Base folder of the saved model; ``None`` keeps the model
                in memory only, which a trainer that runs the job elsewhere
                rejects.
            save_with_id: Save under ``save_path/<training id>``.
            model_name: Name of the model's own folder, last in the path.
            wait: Return only once the job is terminal; check the future's
                status, or call ``load()`` to get the model or the error.
            training_id: The job's id; the trainer generates one when ``None``.
                An id is reusable once its earlier job is terminal.
            overwrite: Replace an existing model at the final path once the new
                one is saved; otherwise a non-empty folder there is an error,
                raised before training starts.
            **kwargs: Keyword arguments of the module's ``train``.

        Raises:
            ModuleNotRegisteredError: ``module`` is an id no library registers.
            UnknownInstanceError: ``trainer`` is not configured.
            TrainingIdInUseError: ``training_id`` belongs to a job that is not
                terminal; that job is left untouched.
            SavePathExistsError: The final save path contains something and
                ``overwrite`` is false, or another unfinished training in this
                process saves to it, whatever ``overwrite`` says.
            TypeError: ``save_path`` is not a ``str`` or ``os.PathLike`` path,
                ``training_id`` is not a ``str``, or ``save_with_id``, ``wait``
                or ``overwrite`` is not a ``bool``.
        """
        _check_train_arguments(save_path, save_with_id, wait, overwrite, training_id)
        module_class = _module_class(module)
        trainer_obj = self.get_trainer(trainer)
        kwargs.update(save_path=save_path, save_with_id=save_with_id)
        kwargs["model_name"] = model_name
        if overwrite:
            kwargs["overwrite"] = True
        if training_id is None:
            future = trainer_obj.train(module_class, *args, **kwargs)
            self._trainings.record(future, trainer_obj)
        else:
            # One id must not start twice, even on two trainers at once.
            with self._trainings.lock:
                self._trainings.check_free(training_id)
                future = trainer_obj.train(
                    module_class, *args, training_id=training_id, **kwargs
                )
                self._trainings.record(future, trainer_obj)
        if wait:
            future.wait()
        return future

    def get_model_future(self, training_id: str) -> ModelFuture:
        """Return the future of a training started on any trainer instance.

        The trainer that started the job through this manager is asked first,
        then the trainer a generated id names (``<trainer name>-<uuid4 hex>``),
        then every trainer built so far.

        Raises:
            TrainingNotFoundError: No trainer has a job with that id; the message names
                the trainers asked.
            TypeError: ``training_id`` is not a ``str``.
        """
        if not isinstance(training_id, str):
            raise TypeError(
                f"training_id must be a str, got {type(training_id).__name__} "
                f"{training_id!r}. Pass the id that train() returned as future.id."
            )
        asked: list[str] = []
        for candidate in self._training_candidates(training_id):
            asked.append(candidate.instance_name)
            try:
                return candidate.get_model_future(training_id)
            except TrainingNotFoundError:
                continue
        raise unknown_training(training_id, asked)

    def _training_candidates(self, training_id: str) -> list[ModelTrainer]:
        candidates: list[ModelTrainer] = []
        owner = self._trainings.owner(training_id)
        if owner is not None:
            candidates.append(owner)
        named = trainer_name_from_id(training_id)
        if named is not None and named in self._trainers.names():
            candidates.append(self.get_trainer(named))
        candidates.extend(self._trainers.built())
        return list(dict.fromkeys(candidates))

    # Loading ------------------------------------------------------------------

    def find(
        self, model_path: Any, *, finder: str | ModelFinder | None = None, **kwargs: Any
    ) -> ModuleConfig:
        """Locate a model and return its ``ModuleConfig`` without initializing it.

        Raises:
            ModelNotFoundError: The finder cannot locate the model.
            ModelFormatError: The model's ``config.yml`` is invalid.
        """
        return self.get_finder(finder).find_model(model_path, **kwargs)

    def initialize(
        self,
        module_config: ModuleConfig,
        *,
        initializer: str | ModelInitializer | None = None,
        **kwargs: Any,
    ) -> ModuleBase:
        """Initialize the model that ``module_config`` describes, without caching."""
        return self.get_initializer(initializer).init(module_config, **kwargs)

    def load(
        self,
        model_path: Any,
        *,
        finder: str | ModelFinder | None = None,
        initializer: str | ModelInitializer | None = None,
        cache: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Find a model, initialize it and return it ready for inference.

        Loaded models are kept by the finder's resolved identity of
        ``model_path``, the finder, the initializer and ``kwargs``: a second call
        returns the same object, and concurrent calls for one model share a
        single initialization. A failed load is not kept.

        Args:
            model_path: What the finder locates: a folder, an archive, a URL.
            finder: Finder instance name or instance; ``None`` means "default".
            initializer: Initializer instance name or instance; ``None`` means
                "default".
            cache: ``False`` loads a new copy and keeps nothing.
            **kwargs: Passed to the finder and to the initializer.

        Raises:
            UnknownInstanceError: ``finder`` or ``initializer`` is not configured.
            ModelNotFoundError: The finder cannot locate the model.
            ModuleNotRegisteredError: No installed library provides the module.
        """
        alias: Hashable | None = None
        # Fast path: an absolute path or URL seen before maps straight to its model.
        # Other identifiers may depend on the working directory or a finder's
        # base path, so they are resolved first.
        if (
            cache
            and type(model_path) is str
            and (model_path[:1] == "/" or "://" in model_path)
        ):
            alias = (model_path, finder, initializer, *kwargs.items())
            try:
                model = self._aliases.get(alias)
            except TypeError:
                alias = model = None
            if model is not None:
                return model
        finder_obj = self.get_finder(finder)
        initializer_obj = self.get_initializer(initializer)
        key = self._cache_key(model_path, finder_obj, initializer_obj, kwargs, cache)
        if key is None:
            return self._load_now(model_path, finder_obj, initializer_obj, kwargs)
        return self._load_shared(
            key, alias, model_path, finder_obj, initializer_obj, kwargs
        )

    def unload(
        self,
        model_path: Any,
        *,
        finder: str | ModelFinder | None = None,
        initializer: str | ModelInitializer | None = None,
        **kwargs: Any,
    ) -> bool:
        """Drop loaded models from the cache and release what they hold.

        Arguments narrow the match: ``finder`` or ``initializer`` left at
        ``None`` matches a model loaded through any of them, and without
        ``kwargs`` a model loaded with any keyword arguments matches. So
        ``unload(path)`` drops every copy of ``path``, including one that
        ``load(path, initializer="ray")`` hosts in an actor.

        Returns:
            Whether at least one model was dropped.
        """
        finder_obj = None if finder is None else self.get_finder(finder)
        initializer_obj = (
            None if initializer is None else self.get_initializer(initializer)
        )
        # Finders may touch the file system or a store, so the keys are matched
        # outside the lock, and a model unloaded meanwhile is skipped.
        with self._lock:
            keys = [key for key in self._models if isinstance(key, tuple)]
        matches = _matching_keys(keys, model_path, finder_obj, initializer_obj, kwargs)
        dropped: list[tuple[ModelInitializer, Any]] = []
        with self._lock:
            for key in matches:
                model = self._models.pop(key, None)
                if model is None:
                    continue
                dropped.append((key[2], model))
                for alias in self._alias_keys.pop(key, []):
                    self._aliases.pop(alias, None)
        for owner, model in dropped:
            owner.release(model)
            log.info(
                "Unloaded model %r from initializer %r", model_path, owner.instance_name
            )
        return bool(dropped)

    def loaded_models(self) -> list[Any]:
        """List the models in this manager's cache."""
        with self._lock:
            return list(self._models.values())

    def _cache_key(
        self,
        model_path: Any,
        finder: ModelFinder,
        initializer: ModelInitializer,
        kwargs: dict[str, Any],
        cache: bool,
    ) -> Hashable | None:
        if not cache:
            return None
        path_key = finder.cache_key(model_path, **kwargs)
        if path_key is None:
            return None
        if not kwargs:
            return (path_key, finder, initializer)
        key = (path_key, finder, initializer, *sorted(kwargs.items()))
        try:
            hash(key)
        except TypeError:
            log.debug("Not caching %r: keyword arguments are not hashable", model_path)
            return None
        return key

    def _load_shared(
        self,
        key: Hashable,
        alias: Hashable | None,
        model_path: Any,
        finder: ModelFinder,
        initializer: ModelInitializer,
        kwargs: dict[str, Any],
    ) -> Any:
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._add_alias(key, alias, model)
                return model
            pending = self._pending.get(key)
            owner = pending is None
            if pending is None:
                pending = self._pending[key] = _Pending()
        if not owner:
            pending.wait()
            if pending.error is not None:
                raise pending.error
            return pending.model
        try:
            pending.model = self._load_now(model_path, finder, initializer, kwargs)
        except BaseException as exc:
            pending.error = exc
            raise
        finally:
            with self._lock:
                del self._pending[key]
                if pending.error is None:
                    self._models[key] = pending.model
                    self._add_alias(key, alias, pending.model)
            pending.lock.release()
        return pending.model

    def _add_alias(self, key: Hashable, alias: Hashable | None, model: Any) -> None:
        if alias is not None and alias not in self._aliases:
            self._aliases[alias] = model
            self._alias_keys.setdefault(key, []).append(alias)

    def _load_now(
        self,
        model_path: Any,
        finder: ModelFinder,
        initializer: ModelInitializer,
        kwargs: dict[str, Any],
    ) -> Any:
        start = time.perf_counter()
        module_config = finder.find_model(model_path, **kwargs)
        model = initializer.init(module_config, **kwargs)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "Loaded model %s (module %s) with finder %r and initializer %r "
                "in %.1f ms",
                module_config.model_path or _describe_path(model_path),
                module_config.module_id,
                finder.instance_name,
                initializer.instance_name,
                (time.perf_counter() - start) * 1000,
            )
        return model


def _module_class(module: type[ModuleBase] | str) -> type[ModuleBase]:
    if isinstance(module, str):
        from .modules import MODULE_REGISTRY

        return MODULE_REGISTRY.get(module)
    if isinstance(module, type) and issubclass(module, ModuleBase):
        return module
    raise TypeError(
        f"module must be a ModuleBase subclass or a registered module id, got "
        f"{type(module).__name__}: {module!r:.60}. Pass the class, or its MODULE_ID."
    )


def _describe_path(model_path: Any) -> str:
    if isinstance(model_path, (bytes, bytearray)):
        return f"<{len(model_path)} bytes>"
    return repr(model_path)[:120]


def _matching_keys(
    keys: list[tuple[Any, ...]],
    model_path: Any,
    finder: ModelFinder | None,
    initializer: ModelInitializer | None,
    kwargs: dict[str, Any],
) -> list[tuple[Any, ...]]:
    """Select the cache keys of ``model_path``; a ``None`` filter matches any."""
    finders = (
        [finder] if finder is not None else list(dict.fromkeys(k[1] for k in keys))
    )
    path_keys: dict[ModelFinder, Hashable] = {}
    for candidate in finders:
        try:
            path_key = candidate.cache_key(model_path, **kwargs)
        except Exception:  # a finder that cannot read this kind of identifier
            path_key = None
        if path_key is not None:
            path_keys[candidate] = path_key
    exact = tuple(sorted(kwargs.items()))
    return [
        key
        for key in keys
        if key[1] in path_keys
        and key[0] == path_keys[key[1]]
        and (initializer is None or key[2] is initializer)
        and (not kwargs or key[3:] == exact)
    ]


def _check_train_arguments(
    save_path: object,
    save_with_id: object,
    wait: object,
    overwrite: object,
    training_id: object,
) -> None:
    if save_path is not None:
        check_save_path_type(save_path)
    for name, value in (
        ("save_with_id", save_with_id),
        ("wait", wait),
        ("overwrite", overwrite),
    ):
        if not isinstance(value, bool):
            raise TypeError(
                f"{name} must be a bool, got {type(value).__name__} {value!r}. "
                "Pass True or False."
            )
    if training_id is not None and not isinstance(training_id, str):
        raise TypeError(
            f"training_id must be a str or None, got {type(training_id).__name__} "
            f"{training_id!r}."
        )
