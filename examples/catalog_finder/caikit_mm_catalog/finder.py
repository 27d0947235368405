"""The CATALOG finder: short model names mapped to model folders.

A configured instance looks like this::

    model_management:
      finders:
        catalog:
          type: CATALOG
          config:
            models:
              iris: /srv/models/iris
            catalog_file: ~/models/catalog.yml

The finder resolves a name to its folder and hands the folder to the LOCAL
finder logic, so paths, symlinks and ``config.yml`` are read exactly as
``finder="default"`` reads them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Final

from caikit_mm.errors import ConfigError, ModelNotFoundError
from caikit_mm.model_management import ModelFinder, ValidationContext
from caikit_mm.model_management.local_finder import LocalModelFinder

if TYPE_CHECKING:
    from caikit_mm.manager import ModelManager
    from caikit_mm.modules import ModuleConfig

log = logging.getLogger(__name__)

CONFIG_KEYS: Final = ("models", "catalog_file", "load_path")


class CatalogModelFinder(ModelFinder):
    """Find a model by a short name listed in the finder's catalog.

    Config:
        models: Names mapped to model folders. A relative folder is looked up
            under ``load_path``, then under the working directory.
        catalog_file: Path of a YAML file of names mapped to model folders, read
            once when the finder is built. A relative folder in it is relative to
            the file's own folder. Names in ``models`` take precedence over the
            file's.
        load_path: Base folder for relative folders in ``models``.

    At least one of ``models`` and ``catalog_file`` is required.
    """

    name: ClassVar[str] = "CATALOG"

    def __init__(self, config: Mapping[str, Any], instance_name: str) -> None:
        super().__init__(config, instance_name)
        key_path = f"model_management.finders.{instance_name}.config"
        catalog: dict[str, str] = {}
        catalog_file = config.get("catalog_file")
        if catalog_file:
            catalog.update(_read_catalog_file(catalog_file, f"{key_path}.catalog_file"))
        catalog.update(config.get("models") or {})
        self.catalog: Mapping[str, str] = MappingProxyType(catalog)
        self._local = LocalModelFinder(
            {"load_path": config.get("load_path") or ""}, f"{instance_name} (LOCAL)"
        )

    @classmethod
    def validate_config(
        cls, config: Mapping[str, Any], context: ValidationContext
    ) -> None:
        unknown = sorted(set(map(str, config)) - set(CONFIG_KEYS))
        if unknown:
            raise context.error(
                f"unknown keys {', '.join(unknown)}; the CATALOG finder takes "
                f"{', '.join(CONFIG_KEYS)}. Check the spelling."
            )
        models = config.get("models")
        if models is not None:
            _validate_models(models, context)
        for key in ("catalog_file", "load_path"):
            value = config.get(key)
            if value is not None and not isinstance(value, str):
                raise context.error(f"{key} must be a path string, got {value!r}.", key)
        if not models and not config.get("catalog_file"):
            raise context.error(
                "the catalog is empty. Set models (name: folder entries), or "
                "catalog_file (a YAML file of such entries), or both."
            )

    def attach(self, manager: ModelManager) -> None:
        super().attach(manager)
        self._local.attach(manager)

    def find_model(self, model_path: Any, **kwargs: Any) -> ModuleConfig:
        """Read the ``config.yml`` of the folder that the name ``model_path`` maps to.

        Raises:
            ModelNotFoundError: The name is not in the catalog, or its folder does
                not exist or contains no ``config.yml``.
            ModelFormatError: The folder's ``config.yml`` is invalid.
        """
        folder = self.folder_of(model_path)
        log.debug("Finder %r maps %r to %s", self.instance_name, model_path, folder)
        try:
            return self._local.find_model(folder, **kwargs)
        except ModelNotFoundError as exc:
            raise ModelNotFoundError(
                f"Catalog finder {self.instance_name!r} maps {model_path!r} to "
                f"{folder!r}, which cannot be loaded: {exc}",
                model_path=model_path,
                finder=self.instance_name,
            ) from exc

    def cache_key(self, model_path: Any, **kwargs: Any) -> Hashable | None:
        try:
            return self._local.cache_key(self.folder_of(model_path))
        except ModelNotFoundError:
            return None

    def folder_of(self, model_name: Any) -> str:
        """Return the folder listed for ``model_name``.

        Raises:
            ModelNotFoundError: ``model_name`` is not a name in the catalog.
        """
        if not isinstance(model_name, str):
            raise ModelNotFoundError(
                f"Catalog finder {self.instance_name!r} takes a model name string, got "
                f"{type(model_name).__name__}: {model_name!r:.60}.",
                model_path=model_name,
                finder=self.instance_name,
            )
        folder = self.catalog.get(model_name)
        if folder is None:
            known = ", ".join(sorted(self.catalog)) or "(none)"
            raise ModelNotFoundError(
                f"Model name {model_name!r} is not in the catalog of finder "
                f"{self.instance_name!r} (CATALOG); known names: {known}. Use one of "
                "them, or add the name under models or to the catalog_file.",
                model_path=model_name,
                finder=self.instance_name,
            )
        return folder


def _validate_models(models: Any, context: ValidationContext) -> None:
    if not isinstance(models, Mapping):
        raise context.error(
            f"models must map model names to folders, got {type(models).__name__}: "
            f"{models!r:.80}. Write it as 'name: /path/to/model' lines.",
            "models",
        )
    for model_name, folder in models.items():
        if not isinstance(model_name, str) or not isinstance(folder, str) or not folder:
            raise context.error(
                f"entry {model_name!r}: {folder!r} must map a name string to a "
                "folder path string.",
                f"models.{model_name}",
            )


def _read_catalog_file(path: str, key_path: str) -> dict[str, str]:
    """Read a YAML catalog of names to folders; relative folders join the file's."""
    import yaml

    catalog_file = os.path.abspath(os.path.expanduser(path))
    try:
        with open(catalog_file, "rb") as stream:
            data = yaml.safe_load(stream)
    except OSError as exc:
        raise ConfigError(
            f"catalog file {catalog_file!r} cannot be read ({exc.strerror}). Check "
            "the path.",
            key_path=key_path,
            source=catalog_file,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"catalog file {catalog_file!r} is not valid YAML ({exc}). Tags such as "
            "!!python/object are rejected by the safe loader.",
            key_path=key_path,
            source=catalog_file,
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(name, str) and isinstance(folder, str) and folder
        for name, folder in data.items()
    ):
        raise ConfigError(
            f"catalog file {catalog_file!r} must contain 'name: folder' lines mapping "
            f"name strings to folder paths, got {data!r:.80}.",
            key_path=key_path,
            source=catalog_file,
        )
    base = os.path.dirname(catalog_file)
    return {
        name: os.path.join(base, os.path.expanduser(folder))
        for name, folder in data.items()
    }
