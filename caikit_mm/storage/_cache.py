"""The local cache folder shared by archive extraction and remote downloads.

Layout under the cache folder:

- ``archives/<sha256 of the archive>/``: an extracted model folder;
- ``remote/<sha256 of the URL>/<version>/``: a downloaded model, with ``.lock``
  and ``current.json`` beside the versions.

Every entry is built in a ``.tmp-*`` folder beside its final place and renamed
into place only when complete, so a folder with a final name is always whole.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..errors import LocalStorageError

log = logging.getLogger(__name__)

CACHE_ENV: Final = "XDG_CACHE_HOME"
TEMP_PREFIX: Final = ".tmp-"
# A temporary folder this old belongs to a process that died: no extraction or
# download of a model is expected to take a day.
STALE_TEMP_SECONDS: Final = 24 * 3600

# The end of a full-disk or read-only cache message, after "Free disk space, or".
CACHE_DIR_FIX: Final = (
    "set cache_dir in the finder's config to a writable folder on a disk with "
    "enough free space."
)

ARCHIVE_SUFFIXES: Final = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
DEFAULT_MAX_BYTES: Final = 64 * 1024**3
DEFAULT_MAX_FILES: Final = 100_000


@dataclass(frozen=True)
class ArchiveLimits:
    """Limits checked against an archive's entries before extraction.

    Attributes:
        max_bytes: Maximum total uncompressed size of the extracted files.
        max_files: Maximum number of files and links.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_files: int = DEFAULT_MAX_FILES


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?", re.IGNORECASE)
_SIZE_UNITS: Final = {
    "": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
}


def default_cache_dir() -> Path:
    """Return the per-user cache folder: ``$XDG_CACHE_HOME/caikit_mm`` or
    ``~/.cache/caikit_mm``."""
    base = os.environ.get(CACHE_ENV) or os.path.join("~", ".cache")
    return Path(base).expanduser() / "caikit_mm"


def cache_dir_from_config(config: Mapping[str, Any]) -> Path:
    """Return the ``cache_dir`` of a finder's config, ``~`` expanded, or the
    default when it is empty."""
    configured = config.get("cache_dir") or ""
    if not configured:
        return default_cache_dir()
    return Path(os.path.expanduser(str(configured))).absolute()


def parse_size(value: object) -> int:
    """Parse a size in bytes: a number, or a string such as ``512MiB`` or ``2GB``.

    Raises:
        ValueError: The value is negative, a bool, or not in this form.
    """
    if isinstance(value, bool):
        raise ValueError(_size_message(value))
    if isinstance(value, int):
        number = float(value)
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if match is None:
            raise ValueError(_size_message(value))
        number = float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()]
    else:
        raise ValueError(_size_message(value))
    if number < 0:
        raise ValueError(_size_message(value))
    return int(number)


def _size_message(value: object) -> str:
    return (
        f"invalid size {value!r}: expected a whole number of bytes or a size such "
        "as '512MiB', '2GB' or '1.5GiB'."
    )


def new_temp_dir(parent: Path, label: str) -> Path:
    """Create an empty temporary folder in ``parent``, on the same file system as
    the final folder so that ``os.rename`` can publish it."""
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / f"{TEMP_PREFIX}{label}-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    return path


def publish_dir(temp: Path, final: Path) -> bool:
    """Rename ``temp`` to ``final``; return ``False`` when ``final`` already
    exists, in which case ``temp`` is removed and ``final`` is kept."""
    try:
        os.rename(temp, final)
    except OSError:
        if not final.is_dir():
            raise
        remove_tree(temp)
        return False
    return True


def remove_tree(path: Path) -> None:
    """Remove a folder and everything in it; a missing folder is no error."""
    shutil.rmtree(path, ignore_errors=True)


def remove_temp_dirs(parent: Path, older_than: float | None = None) -> int:
    """Remove ``.tmp-*`` entries in ``parent``, or only those not modified in
    ``older_than`` seconds; return how many were removed."""
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        return 0
    now = time.time()
    removed = 0
    for name in names:
        if not name.startswith(TEMP_PREFIX):
            continue
        path = parent / name
        try:
            age = now - path.lstat().st_mtime
        except FileNotFoundError:
            continue
        if older_than is not None and age < older_than:
            continue
        if path.is_dir() and not path.is_symlink():
            remove_tree(path)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.debug("Removed %d unfinished temporary entries in %s", removed, parent)
    return removed


def write_file_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}-{uuid.uuid4().hex[:12]}")
    try:
        with open(temp, "wb") as stream:
            stream.write(data)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


@contextmanager
def local_write_errors(folder: Path, what: str, fix: str) -> Iterator[None]:
    """Turn a denied write or a full disk under ``folder`` into a
    :class:`LocalStorageError` that names ``folder``, the path and ``fix``.

    Only a ``PermissionError`` on a local path inside ``folder`` is turned, so
    an object store's access-denied error keeps its own message. ``what`` names
    the folder in the message, such as ``"cache_dir"``, and ``fix`` is the
    alternative to freeing space, starting in lower case.
    """
    try:
        yield
    except LocalStorageError:
        raise
    except PermissionError as exc:
        if not _is_inside(exc.filename, folder):
            raise
        raise LocalStorageError(
            f"Cannot write {exc.filename} in {what} {folder}: permission denied. "
            f"Make the folder writable, or {fix}",
            path=exc.filename,
        ) from None
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        path = exc.filename or folder
        raise LocalStorageError(
            f"The disk of {what} {folder} is full: writing {path} failed ({exc}). "
            f"Free disk space, or {fix}",
            path=path,
        ) from None


def check_free_space(folder: Path, needed: int, label: str, fix: str) -> None:
    """Raise :class:`LocalStorageError` unless ``folder``'s disk has ``needed``
    bytes free; ``label`` names what would be written."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise LocalStorageError(
            f"{label} needs {needed} bytes but {folder} has {free} bytes free. "
            f"Free disk space, or {fix}",
            path=folder,
        )


def _is_inside(filename: object, folder: Path) -> bool:
    if not isinstance(filename, (str, os.PathLike)):
        return False
    path = Path(os.path.abspath(os.fspath(filename)))
    return path == folder.absolute() or folder.absolute() in path.parents
