"""Loading, merging and validating the ``model_management`` configuration.

Sources, in increasing precedence:

1. the packaged ``defaults.yml``;
2. YAML files named in ``CAIKIT_MM_CONFIG_FILES`` (comma-separated paths);
3. environment variables in alchemy-config's style, which override keys that
   already exist (``MODEL_MANAGEMENT_FINDERS_DEFAULT_CONFIG_LOAD_PATH``);
4. the mapping or file passed to ``ModelManager(config=...)``.

Maps merge key by key and lists are replaced whole. An instance entry whose
``type`` changes is replaced whole, so the old type's ``config`` does not leak
into the new one. The result is validated once, here.
"""

from __future__ import annotations

import copy
import difflib
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from .. import _yaml
from ..errors import ConfigError, PluginError

CONFIG_FILES_ENV: Final = "CAIKIT_MM_CONFIG_FILES"
DEFAULTS_FILE: Final = Path(__file__).with_name("defaults.yml")
ROLES: Final = ("trainer", "finder", "initializer")
DEFAULT_INSTANCE: Final = "default"

ConfigSource = Mapping[str, Any] | str | os.PathLike[str]


class ManagerConfig:
    """A merged, validated configuration.

    Attributes:
        data: The merged configuration as plain dicts and lists.
        sources: Where each layer came from, lowest precedence first.
    """

    def __init__(self, data: dict[str, Any], sources: list[str]) -> None:
        self.data = data
        self.sources = sources
        self._provenance: dict[str, str] = {}

    def section(self, role: str) -> dict[str, dict[str, Any]]:
        """Return the instances of ``role`` (a role name such as ``finder``)."""
        return self.data["model_management"][f"{role}s"]  # type: ignore[no-any-return]

    def instance(self, role: str, name: str) -> tuple[str, dict[str, Any]]:
        """Return the type and ``config`` of instance ``name`` of ``role``."""
        entry = self.section(role)[name]
        return entry["type"], entry["config"]

    def source_of(self, key_path: str) -> str:
        """Name the source that last set ``key_path`` or its closest parent."""
        path = key_path
        while path:
            if path in self._provenance:
                return self._provenance[path]
            path = path.rpartition(".")[0]
        return ""


def load_config(overrides: ConfigSource | None = None) -> ManagerConfig:
    """Build and validate the configuration from every source.

    Args:
        overrides: A mapping, or the path of a YAML file, applied last.

    Raises:
        ConfigError: A source cannot be read or a value is invalid. The message
            names the file, the key path and the fix.
    """
    provenance: dict[str, str] = {}
    sources = [str(DEFAULTS_FILE)]
    data = _read_yaml_file(DEFAULTS_FILE)
    _record(provenance, data, "", str(DEFAULTS_FILE))
    for path in _env_files(os.environ):
        layer = _read_yaml_file(path, CONFIG_FILES_ENV)
        _check_top_level(layer, str(path))
        _merge(data, layer, "", provenance, str(path))
        sources.append(str(path))
    data = _apply_env_overrides(data, provenance)
    if overrides is not None:
        layer, label = _read_overrides(overrides)
        _check_top_level(layer, label)
        _merge(data, layer, "", provenance, label)
        sources.append(label)
    config = ManagerConfig(data, sources)
    config._provenance = provenance
    validate(config)
    return config


_global_lock = threading.Lock()
_global_config: ManagerConfig | None = None


def global_config() -> ManagerConfig:
    """Return the process-wide configuration, loaded on first use."""
    global _global_config
    with _global_lock:
        if _global_config is None:
            _global_config = load_config()
        return _global_config


def _env_files(env: Mapping[str, str]) -> list[Path]:
    raw = env.get(CONFIG_FILES_ENV, "")
    return [Path(part.strip()).expanduser() for part in raw.split(",") if part.strip()]


def _read_overrides(overrides: ConfigSource) -> tuple[dict[str, Any], str]:
    if isinstance(overrides, Mapping):
        return copy.deepcopy(_plain(overrides)), "the config passed to ModelManager"
    if isinstance(overrides, (str, os.PathLike)):
        path = Path(overrides).expanduser()
        return _read_yaml_file(path), str(path)
    raise ConfigError(
        f"config must be a mapping or the path of a YAML file, got "
        f"{type(overrides).__name__}: {overrides!r:.80}."
    )


def _read_yaml_file(path: Path, named_by: str = "") -> dict[str, Any]:
    """Read one configuration file. ``named_by`` names where its path came from."""
    try:
        data = _yaml.load_file(path)
    except FileNotFoundError:
        where = f", or remove it from {named_by}" if named_by else ""
        raise ConfigError(
            f"configuration file {str(path)!r} does not exist. Check the "
            f"path{where}.",
            source=str(path),
        ) from None
    except _yaml.YAMLError as exc:
        raise ConfigError(
            f"not valid YAML ({exc}). Fix the syntax; tags such as !!python/object "
            "are rejected because files are read with the safe loader.",
            source=str(path),
        ) from None
    if data is None:
        raise ConfigError(
            "the file is empty. Put a 'model_management:' mapping in it, or stop "
            "passing the file.",
            source=str(path),
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"the file contains a {type(data).__name__}, not a mapping. The top level "
            "must be 'key: value' lines such as 'model_management:'.",
            source=str(path),
        )
    return data


def _check_top_level(layer: Mapping[str, Any], source: str) -> None:
    """Reject a misspelled ``model_management`` key, which would be ignored.

    Other top-level keys are left alone: a file may hold an application's own
    settings beside this library's.
    """
    if "model_management" in layer:
        return
    for key in layer:
        if difflib.get_close_matches(str(key), ["model_management"], cutoff=0.8):
            raise ConfigError(
                f"top-level key {key!r} is not 'model_management', so this library "
                "would ignore it. Rename it to 'model_management'.",
                key_path=str(key),
                source=source,
            )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _record(provenance: dict[str, str], data: Any, prefix: str, source: str) -> None:
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        provenance[path] = source
        if path.count(".") < 3:  # down to model_management.<role>s.<name>.<field>
            _record(provenance, value, path, source)


def _merge(
    base: dict[str, Any],
    layer: dict[str, Any],
    prefix: str,
    provenance: dict[str, str],
    source: str,
) -> None:
    for key, value in layer.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        current = base.get(key)
        if (
            isinstance(current, dict)
            and isinstance(value, dict)
            and not _type_changed(path, current, value)
        ):
            provenance[path] = source
            _merge(current, value, path, provenance, source)
        else:
            base[key] = copy.deepcopy(value)
            _record(provenance, {key: value}, prefix, source)


def _type_changed(path: str, current: dict[str, Any], new: dict[str, Any]) -> bool:
    is_instance = path.count(".") == 2 and path.startswith("model_management.")
    return is_instance and "type" in new and new["type"] != current.get("type")


def _apply_env_overrides(
    data: dict[str, Any], provenance: dict[str, str]
) -> dict[str, Any]:
    import aconfig

    # alchemy-config reads os.environ and overrides only keys that exist, skipping
    # lists; it parses "true", "false" and numbers into bool, int and float.
    overridden = aconfig.Config(copy.deepcopy(data), override_env_vars=True)
    result: dict[str, Any] = _plain(overridden)
    _record_env_changes(data, result, "", provenance)
    _drop_config_of_changed_types(data, result, provenance)
    return result


def _drop_config_of_changed_types(
    before: dict[str, Any], after: dict[str, Any], provenance: dict[str, str]
) -> None:
    """Empty the ``config`` of instances whose ``type`` an environment variable
    changed. Every key in it belongs to the old type, because environment
    variables cannot add keys. The new type then runs with its own defaults."""
    for role in ROLES:
        old_section = before.get("model_management", {}).get(f"{role}s")
        new_section = after.get("model_management", {}).get(f"{role}s")
        if not isinstance(old_section, dict) or not isinstance(new_section, dict):
            continue
        for name, entry in new_section.items():
            old_entry = old_section.get(name)
            if not (isinstance(entry, dict) and isinstance(old_entry, dict)):
                continue
            if entry.get("type") != old_entry.get("type"):
                key_path = f"model_management.{role}s.{name}"
                entry["config"] = {}
                provenance[f"{key_path}.config"] = provenance[f"{key_path}.type"]


def _record_env_changes(
    before: Any, after: Any, prefix: str, provenance: dict[str, str]
) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in after:
            path = f"{prefix}.{key}" if prefix else str(key)
            _record_env_changes(before.get(key), after[key], path, provenance)
    elif before != after:
        env_name = prefix.upper().replace(".", "_").replace("-", "_")
        provenance[prefix] = f"environment variable {env_name}"


def validate(config: ManagerConfig) -> None:
    """Check the structure of ``model_management`` and each instance's config.

    Built-in types check their own ``config`` here. A plugin type from an entry
    point is only looked up by name here, and checks its ``config`` when first
    built, so a configured plugin that fails to import breaks nothing until used.
    """
    from ..model_management import REGISTRIES

    root = config.data
    _require_mapping(config, root.get("model_management"), "model_management")
    for role in ROLES:
        _validate_role(config, role, REGISTRIES[role])


def _require_mapping(config: ManagerConfig, value: Any, key_path: str) -> None:
    if not isinstance(value, dict):
        raise ConfigError(
            f"expected a mapping, got {type(value).__name__} ({value!r:.60}). Write "
            "it as nested 'key: value' lines.",
            key_path=key_path,
            source=config.source_of(key_path),
        )


def _validate_role(config: ManagerConfig, role: str, registry: Any) -> None:
    section_path = f"model_management.{role}s"
    section = config.data["model_management"].get(f"{role}s")
    _require_mapping(config, section, section_path)
    if DEFAULT_INSTANCE not in section:
        raise ConfigError(
            f"no {DEFAULT_INSTANCE!r} {role} is configured; instances: "
            f"{', '.join(map(str, section)) or '(none)'}. Add a "
            f"'{DEFAULT_INSTANCE}: {{type: ..., config: {{...}}}}' entry.",
            key_path=section_path,
            source=config.source_of(section_path),
        )
    for name, entry in section.items():
        _validate_instance(config, role, registry, str(name), entry)


def _validate_instance(
    config: ManagerConfig, role: str, registry: Any, name: str, entry: Any
) -> None:
    key_path = f"model_management.{role}s.{name}"
    source = config.source_of(key_path)
    _require_mapping(config, entry, key_path)
    type_name = entry.get("type")
    if not isinstance(type_name, str) or not type_name:
        raise ConfigError(
            f"the {role} {name!r} has no 'type' (got {type_name!r}). Add a type "
            f"such as 'type: LOCAL'; known types: {', '.join(registry.names())}.",
            key_path=f"{key_path}.type",
            source=source,
        )
    if entry.get("config") is None:
        entry["config"] = {}
    _require_mapping(config, entry["config"], f"{key_path}.config")
    _check_type(config, registry, type_name, f"{key_path}.type")
    _validate_builtin_config(config, registry, type_name, entry["config"], key_path)


def _check_type(
    config: ManagerConfig, registry: Any, type_name: str, key_path: str
) -> None:
    if registry.has(type_name):
        return
    try:
        registry.get(type_name)
    except PluginError as exc:
        raise ConfigError(
            str(exc), key_path=key_path, source=config.source_of(key_path)
        ) from exc


def _validate_builtin_config(
    config: ManagerConfig, registry: Any, type_name: str, values: Any, key_path: str
) -> None:
    from ..model_management.base import ValidationContext
    from ..registry import BUILTIN

    if registry.source_of(type_name) != BUILTIN:
        return
    cls = registry.get(type_name)
    context = ValidationContext(
        f"{key_path}.config",
        config.source_of(key_path),
        config.data["model_management"],
        config.source_of,
    )
    cls.validate_config(values, context)
