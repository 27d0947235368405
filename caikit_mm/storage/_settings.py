"""Config keys of the storage features, their defaults and their checks.

Validation runs when the configuration is loaded and imports no optional
dependency.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..model_management._training_common import parse_duration
from ..model_management.base import ValidationContext
from ._cache import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILES,
    ArchiveLimits,
    cache_dir_from_config,
    parse_size,
)

PROGRESS_MODES: Final = ("auto", "bar", "log", "none")

REMOTE_DEFAULTS: Final[Mapping[str, Any]] = {
    "base_url": "",
    "cache_dir": "",
    "endpoint_url": "",
    "region": "",
    "anonymous": False,
    "profile": "",
    "storage_options": {},
    "max_concurrency": 16,
    "offline": False,
    "progress": "auto",
    "progress_interval": "10s",
    "lock_timeout": "1h",
    "max_archive_bytes": DEFAULT_MAX_BYTES,
    "max_archive_files": DEFAULT_MAX_FILES,
}


@dataclass(frozen=True)
class RemoteSettings:
    """The parsed config of a REMOTE finder."""

    base_url: str
    cache_dir: Path
    endpoint_url: str
    region: str
    anonymous: bool
    profile: str
    storage_options: Mapping[str, Any]
    max_concurrency: int
    offline: bool
    progress: str
    progress_interval: float
    lock_timeout: float
    limits: ArchiveLimits


def archive_settings(config: Mapping[str, Any]) -> tuple[Path, ArchiveLimits]:
    """Return the cache folder and the archive limits of a finder's config."""
    limits = ArchiveLimits(
        max_bytes=parse_size(config.get("max_archive_bytes", DEFAULT_MAX_BYTES)),
        max_files=int(config.get("max_archive_files", DEFAULT_MAX_FILES)),
    )
    return cache_dir_from_config(config), limits


def remote_settings(config: Mapping[str, Any]) -> RemoteSettings:
    """Parse a REMOTE finder's config, filling in the defaults."""
    values = {**REMOTE_DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    cache_dir, limits = archive_settings(values)
    return RemoteSettings(
        base_url=str(values["base_url"]).rstrip("/"),
        cache_dir=cache_dir,
        endpoint_url=str(values["endpoint_url"]),
        region=str(values["region"]),
        anonymous=bool(values["anonymous"]),
        profile=str(values["profile"]),
        storage_options=dict(values["storage_options"] or {}),
        max_concurrency=int(values["max_concurrency"]),
        offline=bool(values["offline"]),
        progress=str(values["progress"]),
        progress_interval=parse_duration(values["progress_interval"]).total_seconds(),
        lock_timeout=parse_duration(values["lock_timeout"]).total_seconds(),
        limits=limits,
    )


def validate_archive_settings(
    config: Mapping[str, Any], context: ValidationContext
) -> None:
    """Check ``cache_dir``, ``max_archive_bytes`` and ``max_archive_files``."""
    _check_str(config, context, "cache_dir", 'a folder path, or "" for the default')
    _check_parsed(
        config, context, "max_archive_bytes", parse_size, "a size such as 16GiB"
    )
    files = config.get("max_archive_files")
    if files is not None and (
        isinstance(files, bool) or not isinstance(files, int) or files < 1
    ):
        raise context.error(
            f"max_archive_files must be a positive whole number, got {files!r}.",
            "max_archive_files",
        )


def validate_remote_settings(
    config: Mapping[str, Any], context: ValidationContext
) -> None:
    """Check every key of a REMOTE finder's config."""
    context.reject_unknown_keys(config, REMOTE_DEFAULTS, "REMOTE finder")
    validate_archive_settings(config, context)
    for key in ("endpoint_url", "region", "profile"):
        _check_str(config, context, key, 'a string, or "" to leave it unset')
    _check_str(config, context, "base_url", 'a URL such as s3://bucket/models, or ""')
    for key in ("anonymous", "offline"):
        value = config.get(key)
        if value is not None and not isinstance(value, bool):
            raise context.error(f"{key} must be true or false, got {value!r}.", key)
    options = config.get("storage_options")
    if options is not None and not isinstance(options, Mapping):
        raise context.error(
            f"storage_options must be a mapping of fsspec options, got {options!r}.",
            "storage_options",
        )
    concurrency = config.get("max_concurrency")
    if concurrency is not None and (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or concurrency < 1
    ):
        raise context.error(
            f"max_concurrency must be a whole number of at least 1, got "
            f"{concurrency!r}.",
            "max_concurrency",
        )
    progress = config.get("progress")
    if progress is not None and progress not in PROGRESS_MODES:
        raise context.error(
            f"progress must be one of {', '.join(PROGRESS_MODES)}, got {progress!r}.",
            "progress",
        )
    for key in ("progress_interval", "lock_timeout"):
        _check_parsed(config, context, key, parse_duration, "a duration such as 10s")


def _check_str(
    config: Mapping[str, Any], context: ValidationContext, key: str, expected: str
) -> None:
    value = config.get(key)
    if value is not None and not isinstance(value, str):
        raise context.error(f"{key} must be {expected}, got {value!r}.", key)


def _check_parsed(
    config: Mapping[str, Any],
    context: ValidationContext,
    key: str,
    parse: Callable[[object], object],
    expected: str,
) -> None:
    value = config.get(key)
    if value is None:
        return
    try:
        parse(value)
    except ValueError as exc:
        raise context.error(f"{key} must be {expected}: {exc}", key) from None
