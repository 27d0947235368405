"""The RAY initializer: load a model inside a Ray actor and return a proxy.

The finder runs in the caller, as for a local load; the actor receives its
``ModuleConfig`` and loads the model with the LOCAL initializer's logic, so the
model path must be one the actor can read. :class:`RemoteModel` stands in for
the model: ``run`` and the module's other public methods call the actor.

Named actors (``actor_name``) are shared: every proxy that loads the same model
under the same name, in any process connected to the cluster, attaches to one
actor, which counts its holders. ``ModelManager.unload`` releases the proxy's
hold, and the release that leaves no holder kills the actor. An anonymous actor
has one holder, so unload kills it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from ..errors import RemoteModelError
from ..model_management.base import ModelInitializer, ValidationContext
from ..modules import ModuleBase, ModuleConfig
from . import _settings as settings
from ._cluster import (
    check_reachable,
    cluster_is_local,
    connect,
    describe_address,
    import_ray,
    remote_cause,
)

log = logging.getLogger(__name__)

# Tries to attach to a named actor that its last holder is killing at that moment.
ATTACH_ATTEMPTS: Final = 5
# How long a proxy waits for the actor to confirm a release before killing it.
RELEASE_TIMEOUT_SECONDS: Final = 30.0
# An actor that has not started after this long (or half of load_timeout, if
# shorter) gets a warning, repeated at PENDING_WARNING_INTERVAL_SECONDS.
PENDING_WARNING_SECONDS: Final = 5.0
PENDING_WARNING_INTERVAL_SECONDS: Final = 60.0

_CHECKS: Final[Mapping[str, settings.Check]] = {
    **settings.CLUSTER_CHECKS,
    "namespace": settings.check_nonempty_string,
    "actor_name": settings.check_string,
    "detached": settings.check_bool,
    "max_concurrency": settings.check_count(1),
    "max_restarts": settings.check_count(0),
    "load_timeout": settings.check_optional_duration,
}


class RayModelInitializer(ModelInitializer):
    """Load each model in a Ray actor and return a :class:`RemoteModel` for it.

    Config:
        address: Cluster to use: ``""`` starts or joins a local Ray instance,
            ``auto`` joins a running one, or ``host:port`` / ``ray://host:port``.
        connect_timeout: How long a TCP connection to the cluster may take.
        num_cpus, num_gpus, memory, resources: Reserved by each actor.
        runtime_env: Ray runtime environment of the actors.
        namespace: Ray namespace of named actors.
        actor_name: Name template of shared actors, with the fields
            ``{module_id}``, ``{model_name}``, ``{model_key}`` and
            ``{instance}``; empty gives each load its own anonymous actor.
        detached: Keep a named actor alive after the process that created it
            exits (Ray's ``lifetime="detached"``).
        max_concurrency: Threads that run model calls in one actor.
        max_restarts: Restarts of an actor whose process died; the model loads
            again on the next call. A load error is never retried.
        load_timeout: How long placing the actor and loading the model may take.
        backend_priority: The LOCAL initializer's backends, used in the actor.
        auth_token_env, auth_token_file: Where the cluster's token is read.
        shared_paths: Folders every node mounts, for models on this machine.
        init_options: Extra ``ray.init`` arguments when this process starts Ray.
    """

    name: ClassVar[str] = "RAY"

    def __init__(self, config: Mapping[str, Any], instance_name: str) -> None:
        super().__init__(config, instance_name)
        values = {**settings.INITIALIZER_DEFAULTS, **config}
        self.cluster = settings.ClusterSettings.from_config(
            config, f"initializer {instance_name!r}"
        )
        self.namespace = str(values["namespace"])
        self.actor_name = str(values["actor_name"] or "")
        self.detached = bool(values["detached"])
        self.max_concurrency = int(values["max_concurrency"])
        self.max_restarts = int(values["max_restarts"])
        timeout = values["load_timeout"]
        self.load_timeout = None if timeout in (None, "") else settings.seconds(timeout)
        self.local_config = {"backend_priority": values["backend_priority"]}

    @classmethod
    def validate_config(
        cls, config: Mapping[str, Any], context: ValidationContext
    ) -> None:
        from ..model_management.local_initializer import LocalModelInitializer

        settings.validate(
            config, context, settings.INITIALIZER_DEFAULTS, _CHECKS, "RAY initializer"
        )
        if "backend_priority" in config:
            LocalModelInitializer.validate_config(
                {"backend_priority": config["backend_priority"]}, context
            )
        template = config.get("actor_name") or ""
        _check_template(template, context)
        if config.get("detached") and not template:
            raise context.error(
                "detached: true needs an actor_name, because Ray finds a detached "
                "actor by its name. Set actor_name, such as "
                "'caikit-mm-{model_key}'.",
                "detached",
            )

    # ModelInitializer -----------------------------------------------------------

    def init(self, module_config: ModuleConfig, **kwargs: Any) -> RemoteModel:
        """Load the model in a Ray actor and return a proxy for it.

        Raises:
            RemoteModelError: The cluster is unreachable, the model path is not
                reachable from the cluster, or the actor died or timed out
                while loading.
            Exception: The load's own error inside the actor (such as
                ``ModuleNotRegisteredError`` or the module's ``load`` error),
                with its original type and message. The actor is killed and the
                load is not retried.
        """
        ray = connect(self.cluster, RemoteModelError)
        self._check_model_path(ray, module_config)
        name = self.resolve_actor_name(module_config, kwargs)
        deadline = self._deadline()
        actor, holder = self._attach(ray, module_config, kwargs, name, deadline)
        started = time.perf_counter()
        info = self._load(ray, actor, module_config, name, deadline)
        model = RemoteModel(actor, info, holder, named=bool(name))
        log.info(
            "Loaded %s in %.1f s: %r",
            module_config.model_path,
            time.perf_counter() - started,
            model,
        )
        return model

    def describe(self, module_config: ModuleConfig) -> dict[str, Any]:
        """Say where :meth:`init` would load ``module_config``, without connecting."""
        return {
            "initializer": self.instance_name,
            "type": self.name,
            "address": describe_address(self.cluster.address),
            "namespace": self.namespace,
            "actor_name": self.resolve_actor_name(module_config, {}) or None,
            "detached": self.detached,
            "resources": self.cluster.ray_resources(),
            # Only the keys: env_vars may hold secrets.
            "runtime_env": sorted(self.cluster.runtime_env),
        }

    def release(self, model: Any) -> None:
        """Release the proxy's hold on its actor; the last holder kills it."""
        if isinstance(model, RemoteModel):
            model.release()

    # Steps of init --------------------------------------------------------------

    def resolve_actor_name(
        self, module_config: ModuleConfig, kwargs: Mapping[str, Any]
    ) -> str:
        """Return the actor name for a model, or ``""`` for an anonymous actor."""
        if not self.actor_name:
            return ""
        return self.actor_name.format(
            **actor_name_fields(module_config, kwargs, self.instance_name)
        )

    def _check_model_path(self, ray: Any, module_config: ModuleConfig) -> None:
        path = module_config.model_path
        if path is None:
            raise RemoteModelError(
                f"Module config for {module_config.module_id!r} has no model_path, "
                "so a Ray actor has nothing to load. Use ModuleConfig.load(folder)."
            )
        # A REMOTE finder's ModuleConfig names its download cache in this
        # process, so the actor reads that folder like any other.
        try:
            check_reachable(
                path,
                cluster_local=cluster_is_local(ray),
                shared_paths=self.cluster.shared_paths,
                what="model path",
                cluster=describe_address(self.cluster.address),
                owner=self.cluster.owner,
            )
        except ValueError as exc:
            raise RemoteModelError(
                f"{exc} A model from a REMOTE finder (such as s3) is read from "
                "that finder's cache_dir, so set cache_dir to a shared folder."
            ) from None

    def _attach(
        self,
        ray: Any,
        module_config: ModuleConfig,
        kwargs: dict[str, Any],
        name: str,
        deadline: float,
    ) -> tuple[Any, str]:
        from ray.exceptions import RayError

        holder = uuid.uuid4().hex
        refs = _module_refs(ray, module_config)
        if not refs:
            log.info(
                "Module id %r is not registered in this process; the Ray actor "
                "looks it up in the libraries of its own environment",
                module_config.module_id,
            )
        for _ in range(ATTACH_ATTEMPTS):
            existed = bool(name) and _actor_exists(ray, name, self.namespace)
            actor = self._actor_class(ray, name).remote(
                module_config, refs, self.local_config, kwargs
            )
            try:
                attached = self._wait_for_start(
                    ray, actor, actor.attach.remote(holder), module_config, deadline
                )
            except RayError as exc:
                if not existed:
                    raise self._start_error(module_config, name, exc) from exc
                # The shared actor died between lookup and attach.
                attached = False
            if attached:
                return actor, holder
            # The last holder of the named actor is killing it: wait for the name
            # to be free, then create a new one.
            _wait_until_gone(ray, name, self.namespace)
        raise RemoteModelError(
            f"Could not attach to Ray actor {name!r} in namespace {self.namespace!r}: "
            f"it was being killed on each of {ATTACH_ATTEMPTS} tries. Another "
            "process is loading and unloading the same model; load it again."
        )

    def _actor_class(self, ray: Any, name: str) -> Any:
        from ._actor import host_actor_class

        options: dict[str, Any] = {
            **self.cluster.ray_resources(),
            "max_restarts": self.max_restarts,
            "max_concurrency": self.max_concurrency,
        }
        if self.cluster.runtime_env:
            options["runtime_env"] = self.cluster.runtime_env
        if name:
            options.update(name=name, namespace=self.namespace, get_if_exists=True)
        if self.detached:
            options["lifetime"] = "detached"
        return host_actor_class().options(**options)

    def _deadline(self) -> float:
        """Return the ``time.monotonic()`` at which the load times out."""
        if self.load_timeout is None:
            return math.inf
        return time.monotonic() + self.load_timeout

    def _wait_for_start(
        self,
        ray: Any,
        actor: Any,
        attach_ref: Any,
        module_config: ModuleConfig,
        deadline: float,
    ) -> bool:
        """Wait for the actor's reply to ``attach``, its first call, and return it.

        The actor runs no code before that reply, so a long wait means that Ray
        has not placed it. Logs a warning that names the resources while it
        waits, and kills it when ``deadline`` passes.

        Raises:
            RemoteModelError: The deadline passed before the actor started.
            RayError: The actor died or could not be created.
        """
        started = time.monotonic()
        delay = PENDING_WARNING_SECONDS
        if self.load_timeout is not None:
            delay = min(delay, self.load_timeout / 2)
        next_warning = started + delay
        warned = False
        while True:
            wait_until = min(deadline, next_warning)
            timeout = max(0.0, wait_until - time.monotonic())
            ready, _ = ray.wait([attach_ref], timeout=timeout)
            if ready:
                break
            now = time.monotonic()
            if now >= deadline:
                error = self._never_started_error(
                    ray, actor, module_config, now - started
                )
                ray.kill(actor, no_restart=True)
                raise error
            if now < next_warning:
                continue
            log.warning(
                "%s %s",
                self._pending_message(ray, actor, module_config, now - started),
                self._timeout_note(),
            )
            warned = True
            next_warning = now + PENDING_WARNING_INTERVAL_SECONDS
        attached = bool(ray.get(attach_ref))
        if warned:
            log.info(
                "Ray actor for %s started after %.1f s",
                module_config.model_path,
                time.monotonic() - started,
            )
        return attached

    def _timeout_note(self) -> str:
        if self.load_timeout is None:
            return "load_timeout is not set, so the load waits until the actor starts."
        return f"The load fails when load_timeout ({self.load_timeout:g} s) expires."

    def _never_started_error(
        self, ray: Any, actor: Any, module_config: ModuleConfig, waited: float
    ) -> RemoteModelError:
        message = self._pending_message(ray, actor, module_config, waited)
        return RemoteModelError(
            f"{message} Ray never scheduled the actor within load_timeout "
            f"({self.load_timeout:g} s), so it was killed. Free those resources "
            "(unload other RAY models), lower num_cpus, num_gpus, memory or "
            f"resources, or raise load_timeout of {self.cluster.owner}."
        )

    def _pending_message(
        self, ray: Any, actor: Any, module_config: ModuleConfig, waited: float
    ) -> str:
        from ._placement import actor_state, describe_resources, requested_resources

        requested = requested_resources(self.cluster.ray_resources())
        message = (
            f"The Ray actor for {module_config.model_path!r} (module "
            f"{module_config.module_id!r}) has not started after {waited:.0f} s "
            f"(Ray actor state: {actor_state(ray, actor)}). "
            f"{describe_resources(ray, requested)}"
        )
        if not _is_registered(module_config.module_id):
            message += (
                f" Module id {module_config.module_id!r} is not registered in this "
                "process either; the actor looks it up in its own libraries once "
                "it starts."
            )
        return message

    def _load(
        self,
        ray: Any,
        actor: Any,
        module_config: ModuleConfig,
        name: str,
        deadline: float,
    ) -> dict[str, Any]:
        from ray.exceptions import GetTimeoutError, RayError, RayTaskError

        remaining = None
        if not math.isinf(deadline):
            remaining = max(0.0, deadline - time.monotonic())
        try:
            info: dict[str, Any] = ray.get(actor.load.remote(), timeout=remaining)
            return info
        except GetTimeoutError:
            ray.kill(actor, no_restart=True)
            raise self._timeout_error(module_config, name) from None
        except RayTaskError as exc:
            ray.kill(actor, no_restart=True)
            cause = remote_cause(exc)
            if cause is None or isinstance(cause, RayError):
                raise RemoteModelError(
                    f"Loading {module_config.model_path!r} failed in "
                    f"{_where(name)}: {exc}"
                ) from exc
            raise cause from exc
        except RayError as exc:
            ray.kill(actor, no_restart=True)
            raise self._start_error(module_config, name, exc) from exc

    def _timeout_error(
        self, module_config: ModuleConfig, name: str
    ) -> RemoteModelError:
        return RemoteModelError(
            f"Loading {module_config.model_path!r} in {_where(name)} did not finish "
            f"within load_timeout ({self.load_timeout:g} s), so the actor was "
            "killed. The actor had started, so the module's load itself took that "
            f"long. Raise load_timeout of {self.cluster.owner}."
        )

    def _start_error(
        self, module_config: ModuleConfig, name: str, error: BaseException
    ) -> RemoteModelError:
        return RemoteModelError(
            f"Loading {module_config.model_path!r} failed: {_where(name)} died or "
            f"could not start ({type(error).__name__}: {_first_line(error)}). The "
            "load is not retried."
        )


class RemoteModel(ModuleBase):
    """Stands in for a model that a Ray actor hosts.

    ``run`` and the module's other public instance methods are available as
    methods of the proxy; each call runs in the actor and returns its result,
    and an error raised by the method is raised here with its original type.

    Attributes:
        MODULE_ID: The hosted module's id, and ``MODULE_NAME`` and
            ``MODULE_VERSION`` as the module declares them.
    """

    def __init__(
        self, actor: Any, info: dict[str, Any], holder: str, *, named: bool
    ) -> None:
        self._actor = actor
        self._info = info
        self._holder = holder
        self._named = named
        self._released = False
        self._methods = frozenset(info["methods"])
        self.MODULE_ID = info["module_id"]  # type: ignore[misc]
        self.MODULE_NAME = info["module_name"]  # type: ignore[misc]
        self.MODULE_VERSION = info["module_version"]  # type: ignore[misc]

    def __repr__(self) -> str:
        info = self._info
        name = f" {info['actor_name']!r}" if info["actor_name"] else ""
        return (
            f"<RemoteModel {info['module_class'] or info['module_id']} in Ray actor "
            f"{info['actor_id']}{name} on node {info['node_ip']} (pid {info['pid']})>"
        )

    def __getattr__(self, name: str) -> Any:
        methods = self.__dict__.get("_methods", frozenset())
        if name.startswith("_") or name not in methods:
            raise AttributeError(
                f"RemoteModel of module {self.__dict__.get('MODULE_ID')!r} has no "
                f"method {name!r}; the hosted model's public methods: "
                f"{', '.join(sorted(methods)) or '(none)'}."
            )
        return functools.partial(self._call, name)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._methods})

    @property
    def actor(self) -> Any:
        """The Ray ``ActorHandle`` of the hosting actor."""
        return self._actor

    @property
    def location(self) -> dict[str, Any]:
        """Where the model runs: actor id and name, namespace, node and pid."""
        keys = ("actor_id", "actor_name", "namespace", "node_id", "node_ip", "pid")
        return {key: self._info[key] for key in keys}

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Run inference in the actor and return the result."""
        return self._call("run", *args, **kwargs)

    def save(self, model_path: str) -> None:
        """Save the model from the actor into ``model_path``, a path it can write."""
        self._call("save", model_path)

    def remote(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Start ``method`` in the actor and return its Ray ``ObjectRef`` at once.

        ``ray.get`` (or ``await``) on the reference returns the result; errors
        arrive as Ray raises them, wrapped in ``RayTaskError``.

        Raises:
            AttributeError: ``method`` is not a public method of the model.
        """
        if method not in self._methods:
            raise AttributeError(
                f"RemoteModel of module {self.MODULE_ID!r} has no method {method!r}; "
                "the hosted model's public methods: "
                f"{', '.join(sorted(self._methods))}."
            )
        return self._actor.call.remote(method, args, kwargs)

    def release(self) -> None:
        """Give up this proxy's hold; kill the actor when no holder remains.

        ``ModelManager.unload`` calls it. Calls after a release fail.
        """
        if self._released:
            return
        self._released = True
        ray = import_ray()
        from ray.exceptions import GetTimeoutError, RayActorError

        remaining = 0
        if self._named:
            try:
                remaining = ray.get(
                    self._actor.detach.remote(self._holder),
                    timeout=RELEASE_TIMEOUT_SECONDS,
                )
            except RayActorError:
                log.debug("%r was already dead when released", self)
                return
            except GetTimeoutError:
                log.warning("%r did not respond to the release; killing it", self)
        if remaining:
            log.info("Released %r; %d other holder(s) keep it", self, remaining)
            return
        ray.kill(self._actor, no_restart=True)
        log.info("Killed %r", self)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._released:
            raise RemoteModelError(
                f"{self!r} was unloaded, so {method}() cannot run. Load the model "
                "again with ModelManager.load."
            )
        ray = import_ray()
        from ray.exceptions import RayActorError, RayError, RayTaskError

        try:
            return ray.get(self.remote(method, *args, **kwargs))
        except RayTaskError as exc:
            cause = remote_cause(exc)
            if cause is None or isinstance(cause, RayError):
                raise RemoteModelError(f"{method}() failed in {self!r}: {exc}") from exc
            raise cause from exc
        except RayActorError as exc:
            raise RemoteModelError(
                f"{self!r} cannot run {method}(): its actor is dead or unreachable "
                f"({_first_line(exc)}). Unload the model with ModelManager.unload "
                "and load it again."
            ) from exc


# Helpers ----------------------------------------------------------------------


def actor_name_fields(
    module_config: ModuleConfig, kwargs: Mapping[str, Any], instance: str
) -> dict[str, str]:
    """Return the values of an ``actor_name`` template's fields for a model.

    ``model_key`` is a digest of the model's real path, its module id and the
    load's keyword arguments, so loads of the same model with the same
    arguments share one name.
    """
    path = module_config.model_path or ""
    real = os.path.realpath(path) if path else ""
    digest = hashlib.sha256(
        repr((real, module_config.module_id, sorted(kwargs.items()))).encode()
    ).hexdigest()[:16]
    return {
        "module_id": module_config.module_id,
        "model_name": os.path.basename(real.rstrip("/")) if real else "",
        "model_key": digest,
        "instance": instance,
    }


def _check_template(template: Any, context: ValidationContext) -> None:
    if not isinstance(template, str) or not template:
        return
    sample = {name: "x" for name in settings.ACTOR_NAME_FIELDS}
    try:
        template.format(**sample)
    except (KeyError, IndexError, ValueError) as exc:
        raise context.error(
            f"actor_name {template!r} is not a valid template ({type(exc).__name__}: "
            f"{exc}); available fields: "
            f"{', '.join('{' + name + '}' for name in settings.ACTOR_NAME_FIELDS)}.",
            "actor_name",
        ) from None


def _module_refs(ray: Any, module_config: ModuleConfig) -> list[tuple[Any, ...]]:
    """Describe the caller's classes for the module id, for the actor to register."""
    from ..errors import ModuleNotRegisteredError
    from ..model_management._subprocess_worker import resolve
    from ..modules import MODULE_REGISTRY

    try:
        implementations = MODULE_REGISTRY.implementations(module_config.module_id)
    except ModuleNotRegisteredError:
        # The actor may still find it among its own installed libraries.
        return []
    refs: list[tuple[Any, ...]] = []
    for cls in implementations.values():
        try:
            importable = (
                cls.__module__ != "__main__"
                and resolve(cls.__module__, cls.__qualname__) is cls
            )
        except Exception:  # noqa: BLE001 - any failure means "not by name"
            importable = False
        if importable:
            refs.append(("import", cls.__module__, cls.__qualname__))
        else:
            refs.append(("pickle", ray.cloudpickle.dumps(cls)))
    return refs


def _is_registered(module_id: str) -> bool:
    from ..errors import ModuleNotRegisteredError
    from ..modules import MODULE_REGISTRY

    try:
        MODULE_REGISTRY.implementations(module_id)
    except ModuleNotRegisteredError:
        return False
    return True


def _where(name: str) -> str:
    return f"Ray actor {name!r}" if name else "a Ray actor"


def _actor_exists(ray: Any, name: str, namespace: str) -> bool:
    try:
        ray.get_actor(name, namespace=namespace)
    except ValueError:
        return False
    return True


def _wait_until_gone(ray: Any, name: str, namespace: str) -> None:
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        try:
            ray.get_actor(name, namespace=namespace)
        except ValueError:
            return
        time.sleep(0.1)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
