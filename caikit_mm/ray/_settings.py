"""Configuration of the RAY trainer and initializer: defaults, checks and parsing.

Both types share the cluster keys (address, resources, runtime_env, auth token,
shared paths); each adds its own. Validation runs when the configuration is
loaded, without importing Ray.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..model_management._training_common import parse_duration
from ..model_management.base import ValidationContext
from ._cluster import split_host_port

CLUSTER_DEFAULTS: Final[Mapping[str, Any]] = {
    "address": "",
    "connect_timeout": "30s",
    "num_cpus": 1,
    "num_gpus": 0,
    "memory": 0,
    "resources": {},
    "runtime_env": {},
    "auth_token_env": "RAY_AUTH_TOKEN",
    "auth_token_file": "",
    "shared_paths": [],
    "init_options": {},
}

TRAINER_DEFAULTS: Final[Mapping[str, Any]] = {
    **CLUSTER_DEFAULTS,
    "mode": "task",
    "max_retries": 0,
    "python_executable": "python",
    "poll_interval": "1s",
    "cancel_grace_period": "10s",
    "retention_duration": "7d",
    "tls_verify": True,
    "storage_finder": "s3",
}

INITIALIZER_DEFAULTS: Final[Mapping[str, Any]] = {
    **CLUSTER_DEFAULTS,
    "namespace": "caikit_mm",
    "actor_name": "",
    "detached": False,
    "max_concurrency": 1,
    "max_restarts": 0,
    "load_timeout": "10m",
    "backend_priority": [{"type": "LOCAL"}],
}

MODES: Final = ("task", "job")
# Fields an actor_name template may use; see initializer.actor_name_fields.
ACTOR_NAME_FIELDS: Final = ("module_id", "model_name", "model_key", "instance")
# Ray sets these through num_cpus, num_gpus and memory, not custom resources.
RESERVED_RESOURCES: Final = frozenset({"CPU", "GPU", "memory", "object_store_memory"})

_BYTES = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)?", re.IGNORECASE)
_UNITS: Final = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
}


@dataclass(frozen=True)
class ClusterSettings:
    """Where and how to reach the cluster, and what one unit of work reserves.

    Attributes:
        owner: The configured instance, for messages, such as ``trainer 'ray'``.
        address: Cluster address as configured; ``""`` starts or joins a local
            instance.
        connect_timeout: Seconds to wait for the cluster's port to answer.
        num_cpus: CPUs reserved per training or actor.
        num_gpus: GPUs reserved per training or actor.
        memory: Bytes of memory reserved, or ``None`` for no reservation.
        resources: Custom resources reserved.
        runtime_env: Ray runtime environment of the tasks, jobs or actors.
        auth_token_env: Environment variable holding the cluster's token.
        auth_token_file: File holding the cluster's token.
        shared_paths: Folders every node of the cluster mounts.
        init_options: Extra ``ray.init`` keyword arguments, used when this
            process opens the connection.
    """

    owner: str
    address: str = ""
    connect_timeout: float = 30.0
    num_cpus: float = 1
    num_gpus: float = 0
    memory: int | None = None
    resources: dict[str, float] = field(default_factory=dict)
    runtime_env: dict[str, Any] = field(default_factory=dict)
    auth_token_env: str = "RAY_AUTH_TOKEN"
    auth_token_file: str = ""
    shared_paths: tuple[str, ...] = ()
    init_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], owner: str) -> ClusterSettings:
        """Build the settings from a validated ``config``, with defaults."""
        values = {**CLUSTER_DEFAULTS, **config}
        return cls(
            owner=owner,
            address=str(values["address"] or ""),
            connect_timeout=seconds(values["connect_timeout"]),
            num_cpus=float(values["num_cpus"]),
            num_gpus=float(values["num_gpus"]),
            memory=parse_bytes(values["memory"]) or None,
            resources={str(k): float(v) for k, v in dict(values["resources"]).items()},
            runtime_env=plain(values["runtime_env"] or {}),
            auth_token_env=str(values["auth_token_env"] or ""),
            auth_token_file=str(values["auth_token_file"] or ""),
            shared_paths=tuple(str(path) for path in values["shared_paths"] or ()),
            init_options=plain(values["init_options"] or {}),
        )

    def ray_resources(self) -> dict[str, Any]:
        """Return the resource options of a Ray task or actor."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory:
            options["memory"] = self.memory
        if self.resources:
            options["resources"] = dict(self.resources)
        return options


def seconds(value: object) -> float:
    """Parse a duration (``30s``, ``10m``, a number of seconds) into seconds."""
    return parse_duration(value).total_seconds()


def parse_bytes(value: object) -> int:
    """Parse a memory size: bytes as a number, or ``512MiB``, ``2GB``, ``1.5Gi``.

    Raises:
        ValueError: Negative, or not a number with an optional unit.
    """
    if isinstance(value, bool):
        raise ValueError(_bytes_message(value))
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        match = _BYTES.fullmatch(value.strip())
        if value.strip() == "":
            return 0
        unit = (match.group(2) or "").lower() if match else None
        if match is None or unit not in _UNITS:
            raise ValueError(_bytes_message(value))
        number = float(match.group(1)) * _UNITS[unit]
    else:
        raise ValueError(_bytes_message(value))
    if number < 0 or not math.isfinite(number):
        raise ValueError(_bytes_message(value))
    return int(number)


def _bytes_message(value: object) -> str:
    return (
        f"invalid memory size {value!r}: expected a number of bytes or a size such "
        "as '512MiB', '2GB' or '1.5GiB'; 0 reserves nothing."
    )


def plain(value: Any) -> Any:
    """Copy nested mappings and lists into plain ``dict`` and ``list`` objects."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


# Validation -------------------------------------------------------------------

Check = Callable[[Any, ValidationContext, str], None]


def validate(
    config: Mapping[str, Any],
    context: ValidationContext,
    defaults: Mapping[str, Any],
    checks: Mapping[str, Check],
    type_label: str,
) -> None:
    """Reject unknown keys, then run the check of every key that is present."""
    unknown = sorted(set(map(str, config)) - set(defaults))
    if unknown:
        raise context.error(
            f"unknown key(s) {', '.join(map(repr, unknown))} for a {type_label}; "
            f"known keys: {', '.join(sorted(defaults))}. Check the spelling.",
            unknown[0],
        )
    for key, check in checks.items():
        if key in config:
            check(config[key], context, key)


def check_address(value: Any, context: ValidationContext, key: str) -> None:
    """Check a cluster address: empty, ``auto``, ``local``, ``host:port`` or a URL."""
    if not isinstance(value, str):
        raise context.error(f"address must be a string, got {value!r}.", key)
    if value in ("", "auto", "local"):
        return
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in ("", "ray", "http", "https"):
        raise context.error(
            f"address {value!r} has the scheme {scheme!r}; expected host:port, "
            "ray://host:port, http(s)://host:port, 'auto' or '' (start or join a "
            "local Ray instance).",
            key,
        )
    host, port = split_host_port(value)
    if not host or (port is None and scheme in ("", "ray")):
        raise context.error(
            f"address {value!r} needs a host and a port, such as 10.0.0.5:6379, "
            "ray://head:10001 or http://head:8265.",
            key,
        )


def check_duration(value: Any, context: ValidationContext, key: str) -> None:
    """Check a duration such as ``30s`` or ``10m``."""
    try:
        parse_duration(value)
    except ValueError as exc:
        raise context.error(str(exc), key) from None


def check_optional_duration(value: Any, context: ValidationContext, key: str) -> None:
    """Check a duration that may be empty."""
    if value not in (None, ""):
        check_duration(value, context, key)


def check_amount(value: Any, context: ValidationContext, key: str) -> None:
    """Check a resource amount: a number of zero or more."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise context.error(f"{key} must be a number of 0 or more, got {value!r}.", key)


def check_memory(value: Any, context: ValidationContext, key: str) -> None:
    """Check a memory size."""
    try:
        parse_bytes(value)
    except ValueError as exc:
        raise context.error(str(exc), key) from None


def check_resources(value: Any, context: ValidationContext, key: str) -> None:
    """Check custom resources: names mapped to amounts."""
    if not isinstance(value, Mapping):
        raise context.error(
            f"resources must be a mapping of resource names to amounts, got {value!r}.",
            key,
        )
    for name, amount in value.items():
        if name in RESERVED_RESOURCES:
            raise context.error(
                f"resources must not set {name!r}; use num_cpus, num_gpus or memory.",
                f"{key}.{name}",
            )
        check_amount(amount, context, f"{key}.{name}")


def check_mapping(value: Any, context: ValidationContext, key: str) -> None:
    """Check a mapping such as ``runtime_env`` or ``init_options``."""
    if not isinstance(value, Mapping):
        raise context.error(f"{key} must be a mapping, got {value!r}.", key)


def check_string(value: Any, context: ValidationContext, key: str) -> None:
    """Check a string, which may be empty."""
    if not isinstance(value, str):
        raise context.error(f"{key} must be a string, got {value!r}.", key)


def check_nonempty_string(value: Any, context: ValidationContext, key: str) -> None:
    """Check a non-empty string."""
    if not isinstance(value, str) or not value:
        raise context.error(f"{key} must be a non-empty string, got {value!r}.", key)


def check_count(minimum: int) -> Check:
    """Return a check for an integer of at least ``minimum``."""

    def check(value: Any, context: ValidationContext, key: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise context.error(
                f"{key} must be an integer of {minimum} or more, got {value!r}.", key
            )

    return check


def check_bool(value: Any, context: ValidationContext, key: str) -> None:
    """Check a boolean."""
    if not isinstance(value, bool):
        raise context.error(f"{key} must be true or false, got {value!r}.", key)


def check_shared_paths(value: Any, context: ValidationContext, key: str) -> None:
    """Check a list of absolute folder paths."""
    if not isinstance(value, list) or not all(
        isinstance(path, str) and path.startswith(("/", "~")) for path in value
    ):
        raise context.error(
            f"shared_paths must be a list of absolute folder paths, got {value!r}.",
            key,
        )


CLUSTER_CHECKS: Final[Mapping[str, Check]] = {
    "address": check_address,
    "connect_timeout": check_duration,
    "num_cpus": check_amount,
    "num_gpus": check_amount,
    "memory": check_memory,
    "resources": check_resources,
    "runtime_env": check_mapping,
    "auth_token_env": check_string,
    "auth_token_file": check_string,
    "shared_paths": check_shared_paths,
    "init_options": check_mapping,
}
