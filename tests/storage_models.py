"""A small module for storage tests, and helpers that write models and archives.

``StoredModel`` reads every file of its folder at load time, so a test can
compare what a finder delivered with what was stored. Importing this file
registers the module; child processes started by tests import it too.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import caikit_mm
from caikit_mm import ModuleBase

MODULE_ID = "caikit-mm-storage-test"
DOWNLOAD_LOGGER = "caikit_mm.storage._download"


@caikit_mm.module(id=MODULE_ID, name="Storage test model")
class StoredModel(ModuleBase):
    """Holds the bytes of every file in its model folder."""

    def __init__(self, path: str, files: dict[str, bytes]) -> None:
        self.path = path
        self.files = files

    @classmethod
    def load(cls, model_path: str) -> StoredModel:
        root = Path(model_path)
        files = {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }
        return cls(model_path, files)


def config_bytes(label: str = "") -> bytes:
    """Return a ``config.yml`` for ``StoredModel``."""
    return f"module_id: {MODULE_ID}\nname: {label or 'test'}\n".encode()


def model_files(label: str = "", extra: int = 2, size: int = 100) -> dict[str, bytes]:
    """Return the files of a model: ``config.yml`` and ``extra`` data files."""
    files = {"config.yml": config_bytes(label)}
    for index in range(extra):
        files[f"data/part-{index}.bin"] = os.urandom(size)
    return files


def write_folder(folder: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` (relative name to content) under ``folder``."""
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def zip_bytes(files: dict[str, bytes], prefix: str = "") -> bytes:
    """Return a zip archive of ``files``, each name under ``prefix``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(prefix + name, data)
    return buffer.getvalue()


def tar_bytes(
    files: dict[str, bytes], prefix: str = "", compression: str = ""
) -> bytes:
    """Return a tar archive of ``files``; ``compression`` is ``""``, ``gz``..."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as archive:
        for name, data in files.items():
            add_tar_member(archive, prefix + name, data)
    return buffer.getvalue()


def add_tar_member(
    archive: tarfile.TarFile,
    name: str,
    data: bytes = b"",
    kind: bytes = tarfile.REGTYPE,
    link: str = "",
) -> None:
    """Add one member of any tar type to ``archive``."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    else:
        archive.addfile(info)


def count_downloads(records: list[logging.LogRecord]) -> int:
    """Count the finished downloads among captured log records."""
    return sum(
        1
        for record in records
        if record.name == DOWNLOAD_LOGGER
        and record.getMessage().startswith("Downloaded")
    )


def remote_manager(finder_config: dict[str, Any], name: str = "s3") -> Any:
    """Return a ModelManager with one REMOTE finder called ``name``."""
    return caikit_mm.ModelManager(
        {
            "model_management": {
                "finders": {name: {"type": "REMOTE", "config": finder_config}}
            }
        }
    )
