"""``ModuleConfig``: the parsed ``config.yml`` of a saved model.

The file format is the caikit model format: a YAML mapping with ``module_id``,
``module_class``, ``name``, ``version``, ``created``, ``saved``, ``tracking_id``,
library versions, and any keys the module itself wrote.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from .. import _yaml
from ..errors import ModelFormatError

CONFIG_FILE: Final = "config.yml"

# Older caikit models name the module id after the kind of module that wrote them.
LEGACY_ID_KEYS: Final = ("block_id", "workflow_id", "resource_id")

RESERVED_KEYS: Final = frozenset({"model_path"})


class AttrDict(dict):  # type: ignore[type-arg]
    """A ``dict`` whose string keys can also be read as attributes.

    Nested mappings become ``AttrDict`` too, and lists keep their items. Unlike a
    plain attribute bag, non-string keys (such as the integer labels of a label
    map) are kept as they are.
    """

    def __init__(self, data: Mapping[Any, Any] | None = None, **kwargs: Any) -> None:
        super().__init__()
        for key, value in {**(data or {}), **kwargs}.items():
            dict.__setitem__(self, key, _wrap(value))

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            keys = sorted(map(str, self))
            raise AttributeError(
                f"{type(self).__name__} has no key {key!r}; keys: {keys}"
            ) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, _wrap(value))

    def to_dict(self) -> dict[Any, Any]:
        """Return a deep copy made of plain ``dict`` and ``list`` objects."""
        return {key: _unwrap(value) for key, value in self.items()}


def _wrap(value: Any) -> Any:
    if isinstance(value, AttrDict):
        return value
    if isinstance(value, Mapping):
        return AttrDict(value)
    if isinstance(value, list):
        return [_wrap(item) for item in value]
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unwrap(item) for item in value]
    return value


class ModuleConfig(AttrDict):
    """The parsed ``config.yml`` of a model, plus the folder it was read from.

    A mapping with attribute access. ``model_path`` is not a key: it is the folder
    the config was loaded from, or ``None`` for a config built in memory.

    Args:
        data: The mapping read from ``config.yml``; it must contain ``module_id``,
            or one of the legacy keys ``block_id``, ``workflow_id`` or
            ``resource_id``.
        model_path: The folder the model lives in.
        source: Where ``data`` came from, used in error messages.

    Raises:
        ModelFormatError: ``module_id`` is missing or not a string, or a reserved
            key is present.
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        model_path: str | os.PathLike[str] | None = None,
        *,
        source: str = "",
    ) -> None:
        where = source or "the module config"
        if not isinstance(data, Mapping):
            raise ModelFormatError(
                f"{where} must be a YAML mapping of keys to values, got "
                f"{type(data).__name__}: {data!r:.80}. Write the model's config.yml "
                "as 'key: value' lines with at least 'module_id'.",
                path=source or None,
            )
        fields = dict(data)
        _check_reserved(fields, where, source)
        _normalize_module_id(fields, where, source)
        super().__init__(fields)
        object.__setattr__(
            self, "model_path", None if model_path is None else os.fspath(model_path)
        )

    @property
    def module_id(self) -> str:
        """The id of the module that saved the model and can load it."""
        return str(self["module_id"])

    @classmethod
    def load(cls, model_path: str | os.PathLike[str]) -> ModuleConfig:
        """Read ``config.yml`` from a model folder.

        Raises:
            ModelNotFoundError: The folder has no ``config.yml``.
            ModelFormatError: The file is empty, not YAML, not a mapping, uses a
                YAML tag that the safe loader rejects, or lacks ``module_id``.
        """
        folder = os.fspath(model_path)
        config_file = os.path.join(folder, CONFIG_FILE)
        try:
            with open(config_file, "rb") as stream:
                text = stream.read()
        except (FileNotFoundError, NotADirectoryError):
            from ..errors import ModelNotFoundError

            raise ModelNotFoundError(
                f"Folder {folder!r} holds no {CONFIG_FILE}, so it is not a saved "
                f"model. {_missing_config_hint(folder)}",
                model_path=folder,
            ) from None
        return cls(_parse(text, config_file), folder, source=config_file)

    def save(self, model_path: str | os.PathLike[str]) -> None:
        """Write ``config.yml`` into ``model_path`` atomically."""
        Path(model_path).mkdir(parents=True, exist_ok=True)
        target = Path(model_path, CONFIG_FILE)
        _yaml.write_file_atomic(target, _yaml.dumps(self.to_dict()))

    def __repr__(self) -> str:
        return f"ModuleConfig({dict.__repr__(self)}, model_path={self.model_path!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.to_dict(), self.model_path))


def _rebuild(data: dict[str, Any], model_path: str | None) -> ModuleConfig:
    return ModuleConfig(data, model_path)


def _parse(text: bytes, config_file: str) -> Any:
    try:
        data = _yaml.loads(text)
    except _yaml.YAMLError as exc:
        raise ModelFormatError(
            f"{config_file} is not valid YAML: {exc}. Only plain YAML is accepted: "
            "tags such as !!python/object are rejected by the safe loader.",
            path=config_file,
        ) from None
    if data is None:
        raise ModelFormatError(
            f"{config_file} is empty. It must hold a YAML mapping with at least "
            "'module_id'; save the model again with its module.",
            path=config_file,
        )
    return data


def _check_reserved(fields: dict[str, Any], where: str, source: str) -> None:
    for key in RESERVED_KEYS & fields.keys():
        raise ModelFormatError(
            f"{where} sets the reserved key {key!r}; the model folder's location is "
            f"supplied at load time. Remove {key!r} from the file.",
            path=source or None,
        )


def _normalize_module_id(fields: dict[str, Any], where: str, source: str) -> None:
    if "module_id" not in fields:
        for legacy in LEGACY_ID_KEYS:
            if legacy in fields:
                fields["module_id"] = fields.pop(legacy)
                break
    module_id = fields.get("module_id")
    if module_id is None:
        raise ModelFormatError(
            f"{where} has no 'module_id'. Add the id of the module that saved the "
            f"model, for example module_id: my-module-id; keys found: "
            f"{sorted(map(str, fields))}.",
            path=source or None,
        )
    if not isinstance(module_id, str):
        raise ModelFormatError(
            f"{where} has a module_id of type {type(module_id).__name__} "
            f"({module_id!r}); module_id must be a string. Quote it in the YAML, "
            f'for example module_id: "{module_id}".',
            path=source or None,
        )


def _missing_config_hint(folder: str) -> str:
    if os.path.isfile(os.path.join(folder, "config.json")):
        return (
            "It holds config.json, as a Hugging Face save folder does: load it "
            "with finder='transformers' (pip install 'caikit_mm[transformers]')."
        )
    return f"Pass the folder that holds the model's {CONFIG_FILE}."
