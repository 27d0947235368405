"""The LOCAL finder: a model folder on this machine's file system."""

from __future__ import annotations

import io
import logging
import os
import stat
import threading
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar

from ..errors import ModelNotFoundError
from ..modules import CONFIG_FILE, ModuleConfig
from .base import ModelFinder, ValidationContext

log = logging.getLogger(__name__)

CONFIG_KEYS = ("load_path", "cache_dir", "max_archive_bytes", "max_archive_files")


class LocalModelFinder(ModelFinder):
    """Find a model in a local folder that contains ``config.yml``, or in a zip or
    tar archive of such a folder.

    Config:
        load_path: Base folder for relative identifiers; ``~`` is expanded. A
            relative identifier is tried under ``load_path`` first, then under the
            working directory.
        cache_dir: Folder that archives are extracted into; ``~`` is expanded,
            and ``""`` means ``$XDG_CACHE_HOME/caikit_mm`` or
            ``~/.cache/caikit_mm``.
        max_archive_bytes: Largest total uncompressed size an archive may hold,
            in bytes or as ``16GiB``.
        max_archive_files: Largest number of files and links an archive may hold.
    """

    name: ClassVar[str] = "LOCAL"
    # Keys that validate_config accepts; a subclass adds its own.
    config_keys: ClassVar[tuple[str, ...]] = CONFIG_KEYS

    def __init__(self, config: Mapping[str, Any], instance_name: str) -> None:
        super().__init__(config, instance_name)
        load_path = config.get("load_path") or ""
        self._load_path = os.path.expanduser(load_path) if load_path else ""
        self._last_stat = threading.local()

    @classmethod
    def validate_config(
        cls, config: Mapping[str, Any], context: ValidationContext
    ) -> None:
        context.reject_unknown_keys(config, cls.config_keys, f"{cls.name} finder")
        load_path = config.get("load_path")
        if load_path is not None and not isinstance(load_path, str):
            raise context.error(
                f"load_path must be a folder path string, got {load_path!r}. Set it "
                "to a folder, or to \"\" for the working directory.",
                "load_path",
            )
        from ..storage._settings import validate_archive_settings

        validate_archive_settings(config, context)

    def find_model(self, model_path: Any, **kwargs: Any) -> ModuleConfig:
        """Read ``config.yml`` from the model folder ``model_path``.

        ``model_path`` may also be a zip or tar archive: its path, its bytes or
        a binary file object. The archive is extracted once into ``cache_dir``.

        Raises:
            ModelNotFoundError: The path does not exist, or the folder contains no
                ``config.yml``.
            ModelFormatError: ``config.yml`` cannot be parsed or lacks ``module_id``.
            ArchiveError: A file or content that is not a valid model archive.
            UnsafeArchiveError: The archive has an unsafe entry or is too large.
        """
        if isinstance(model_path, io.TextIOBase):
            raise ModelNotFoundError(
                f"Finder {self.instance_name!r} ({self.name}) got a file opened in "
                f"text mode ({getattr(model_path, 'name', model_path)!r}). Open the "
                "archive in binary mode, open(path, 'rb'), or pass its path.",
                model_path=model_path,
                finder=self.instance_name,
            )
        if _is_archive_object(model_path):
            folder = self._extract(model_path)
        else:
            folder = self._resolve_model(model_path)
        log.debug("Finder %r reading %s", self.instance_name, folder)
        try:
            return ModuleConfig.load(folder)
        except ModelNotFoundError as exc:
            exc.finder = self.instance_name
            raise

    def cache_key(self, model_path: Any, **kwargs: Any) -> Hashable | None:
        """Return the folder's device and inode, the same for every path to it."""
        try:
            found = self._stat(model_path)
        except ModelNotFoundError:
            return None
        # The manager calls find_model next in this thread; keep the result for it.
        self._last_stat.value = (model_path, found)
        return None if found[1] is None else ("inode", found[1].st_dev, found[1].st_ino)

    def resolve(self, model_path: Any) -> str:
        """Return the absolute path of the model folder named by ``model_path``.

        Raises:
            ModelNotFoundError: No candidate path exists, or it is a file.
        """
        last = getattr(self._last_stat, "value", None)
        self._last_stat.value = None
        found = last[1] if last is not None and last[0] is model_path else None
        if found is None:
            found = self._stat(model_path)
        path, status = found
        if status is not None:
            return self._check_folder(model_path, _absolute(path), status)
        raise ModelNotFoundError(
            f"Model {os.fspath(model_path)!r} not found by finder "
            f"{self.instance_name!r} ({self.name}); tried {path}. Check the path, "
            "or set load_path in the finder's config for relative paths.",
            model_path=model_path,
            finder=self.instance_name,
        )

    def _resolve_model(self, model_path: Any) -> str:
        """Return the model folder: ``model_path`` itself, or the extraction of
        the archive file it names."""
        try:
            return self.resolve(model_path)
        except ModelNotFoundError:
            path, status = self._stat(model_path)
            if status is None or not stat.S_ISREG(status.st_mode):
                raise
            if os.path.basename(path) == CONFIG_FILE:
                raise ModelNotFoundError(
                    f"Model path {os.fspath(model_path)!r} is the {CONFIG_FILE} "
                    "file, not the model. Pass the folder that holds it: "
                    f"{os.path.dirname(_absolute(path))!r}.",
                    model_path=model_path,
                    finder=self.instance_name,
                ) from None
            return self._extract(_absolute(path))

    def _extract(self, archive: Any) -> str:
        from ..storage._settings import archive_settings
        from ..storage.archive import extract_model_archive

        cache_dir, limits = archive_settings(self.config)
        return os.fspath(extract_model_archive(archive, cache_dir, limits))

    def _stat(self, model_path: Any) -> tuple[str, os.stat_result | None]:
        """Return the first candidate path that exists and its status, or the
        list of candidates tried and ``None``."""
        candidates = self._candidates(model_path)
        for candidate in candidates:
            try:
                return candidate, os.stat(candidate)
            except OSError:
                continue
        return ", ".join(repr(c) for c in candidates), None

    def _candidates(self, model_path: Any) -> list[str]:
        if type(model_path) is str and model_path[:1] == "/":
            return [model_path]
        if model_path == "" or (
            isinstance(model_path, str) and ("://" in model_path or "\0" in model_path)
        ):
            raise self._unsupported_identifier(model_path)
        if not isinstance(model_path, (str, os.PathLike)):
            raise ModelNotFoundError(
                f"Finder {self.instance_name!r} ({self.name}) takes a model path, "
                f"got {type(model_path).__name__}: {model_path!r:.60}. Pass a folder "
                "or archive path as a str or pathlib.Path, archive bytes, or a "
                "binary file object.",
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

    def _unsupported_identifier(self, model_path: str) -> ModelNotFoundError:
        if model_path == "":
            problem = "got an empty model path"
            fix = "Pass the model's folder or archive path"
        elif "\0" in model_path:
            problem = f"got a model path with a NUL character: {model_path!r:.120}"
            fix = "Remove the NUL character from the path"
        else:
            problem = f"reads local paths, not URLs such as {model_path!r}"
            fix = (
                "Pass finder='s3' (a REMOTE finder in the default configuration), "
                "or another finder configured for URLs"
            )
        return ModelNotFoundError(
            f"Finder {self.instance_name!r} ({self.name}) {problem}. {fix}.",
            model_path=model_path,
            finder=self.instance_name,
        )

    def _check_folder(
        self, model_path: Any, folder: str, status: os.stat_result
    ) -> str:
        if not stat.S_ISDIR(status.st_mode):
            raise ModelNotFoundError(
                f"Model path {os.fspath(model_path)!r} ({folder}) is a file, not a "
                f"model folder. Pass the folder that holds {CONFIG_FILE}.",
                model_path=model_path,
                finder=self.instance_name,
            )
        return folder


def _is_archive_object(model_path: Any) -> bool:
    """Tell whether ``model_path`` is archive content: bytes or a binary file."""
    if isinstance(model_path, (bytes, bytearray, memoryview)):
        return True
    return hasattr(model_path, "read") and not isinstance(
        model_path, (str, os.PathLike)
    )


def _absolute(path: str) -> str:
    # Lexical normalization is exact unless a ".." follows a symlink, so only
    # such paths pay for resolving every component.
    if ".." in path and ".." in path.split(os.sep):
        return os.path.realpath(path)
    return os.path.abspath(path)
