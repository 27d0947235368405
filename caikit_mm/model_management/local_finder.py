"""The LOCAL finder: a model folder on this machine's file system."""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar

from ..errors import ModelNotFoundError
from ..modules import CONFIG_FILE, ModuleConfig
from .base import ModelFinder, ValidationContext

log = logging.getLogger(__name__)


class LocalModelFinder(ModelFinder):
    """Find a model in a local folder that holds ``config.yml``.

    Config:
        load_path: Base folder for relative identifiers; ``~`` is expanded. A
            relative identifier is tried under ``load_path`` first, then under the
            working directory.
    """

    name: ClassVar[str] = "LOCAL"

    def __init__(self, config: Mapping[str, Any], instance_name: str) -> None:
        super().__init__(config, instance_name)
        load_path = config.get("load_path") or ""
        self._load_path = os.path.expanduser(load_path) if load_path else ""

    @classmethod
    def validate_config(cls, config: Mapping[str, Any], context: ValidationContext) -> None:
        load_path = config.get("load_path")
        if load_path is not None and not isinstance(load_path, str):
            raise context.error(
                f"load_path must be a folder path string, got {load_path!r}. Set it "
                "to a folder, or to \"\" for the working directory.",
                "load_path",
            )

    def find_model(self, model_path: Any, **kwargs: Any) -> ModuleConfig:
        """Read ``config.yml`` from the model folder ``model_path``.

        Raises:
            ModelNotFoundError: The path does not exist, is not a folder, or holds
                no ``config.yml``.
            ModelFormatError: ``config.yml`` cannot be parsed or lacks ``module_id``.
        """
        folder = self.resolve(model_path)
        log.debug("Finder %r reading %s", self.instance_name, folder)
        return ModuleConfig.load(folder)

    def cache_key(self, model_path: Any, **kwargs: Any) -> Hashable | None:
        try:
            return self.resolve(model_path)
        except ModelNotFoundError:
            return None

    def resolve(self, model_path: Any) -> str:
        """Return the real path of the model folder named by ``model_path``.

        Raises:
            ModelNotFoundError: No candidate path exists, or it is not a folder
                holding ``config.yml``.
        """
        candidates = self._candidates(model_path)
        for candidate in candidates:
            if os.path.exists(candidate):
                return self._check_folder(model_path, os.path.realpath(candidate))
        tried = ", ".join(repr(c) for c in candidates)
        raise ModelNotFoundError(
            f"Model {os.fspath(model_path)!r} not found by finder "
            f"{self.instance_name!r} ({self.name}); tried {tried}. Check the path, "
            "or set load_path in the finder's config for relative paths.",
            model_path=model_path,
            finder=self.instance_name,
        )

    def _candidates(self, model_path: Any) -> list[str]:
        if not isinstance(model_path, (str, os.PathLike)):
            raise ModelNotFoundError(
                f"Finder {self.instance_name!r} ({self.name}) takes a folder path, "
                f"got {type(model_path).__name__}: {model_path!r:.60}. Pass a str or "
                "pathlib.Path.",
                model_path=model_path,
                finder=self.instance_name,
            )
        path = os.path.expanduser(os.fspath(model_path))
        if os.path.isabs(path):
            return [path]
        candidates = [os.path.join(self._load_path, path)] if self._load_path else []
        in_cwd = os.path.abspath(path)
        if in_cwd not in candidates:
            candidates.append(in_cwd)
        return candidates

    def _check_folder(self, model_path: Any, folder: str) -> str:
        if not os.path.isdir(folder):
            raise ModelNotFoundError(
                f"Model path {os.fspath(model_path)!r} ({folder}) is a file, not a "
                f"model folder. Pass the folder that holds {CONFIG_FILE}.",
                model_path=model_path,
                finder=self.instance_name,
            )
        if not os.path.isfile(os.path.join(folder, CONFIG_FILE)):
            raise ModelNotFoundError(
                f"Folder {folder!r} exists but holds no {CONFIG_FILE}, so it is not a "
                f"saved model. Pass the folder that holds the model's {CONFIG_FILE}.",
                model_path=model_path,
                finder=self.instance_name,
            )
        return folder
