"""Safe extraction of model archives (zip, tar, tar.gz) into the local cache.

Every entry is checked before any file is written: names with ``..``, absolute
names, links that point outside the model folder, device files, FIFOs and
archives over the size or file-count limit are rejected with
:class:`UnsafeArchiveError` naming the entry. An archive is extracted once per
content hash, into a temporary folder that is renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Union

from ..errors import ArchiveError, UnsafeArchiveError
from ..modules import CONFIG_FILE
from ._cache import (
    CACHE_DIR_FIX,
    STALE_TEMP_SECONDS,
    ArchiveLimits,
    local_write_errors,
    new_temp_dir,
    publish_dir,
    remove_temp_dirs,
    remove_tree,
)

log = logging.getLogger(__name__)

ArchiveSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]

# Top-level names skipped when looking for the model folder, and never extracted.
IGNORED_TOP_LEVEL: Final = frozenset({"__MACOSX"})

_CHUNK: Final = 1024 * 1024
_SPOOL_BYTES: Final = 64 * 1024 * 1024

_FILE, _DIR, _SYMLINK, _HARDLINK = "file", "dir", "symlink", "hardlink"


@dataclass
class _Entry:
    name: str  # normalized, "/"-separated, relative
    kind: str
    size: int
    member: Any  # ZipInfo or TarInfo
    link: str = ""  # symlink target as stored, or normalized hard link target


def extract_model_archive(
    source: ArchiveSource,
    cache_dir: str | os.PathLike[str],
    limits: ArchiveLimits | None = None,
) -> Path:
    """Extract a model archive into ``cache_dir/archives`` and return the model
    folder, reusing an earlier extraction of the same content.

    ``source`` is an archive path, its bytes, or a binary file object, which is
    read from its current position and not closed.

    Raises:
        ArchiveError: The content is not a zip or tar archive, or the archive
            has no ``config.yml`` at its root or in exactly one top-level folder.
        UnsafeArchiveError: An entry is unsafe or a limit is exceeded; nothing
            is written.
        LocalStorageError: ``cache_dir`` is read-only or its disk filled up
            during the extraction.
    """
    limits = limits or ArchiveLimits()
    root = Path(cache_dir) / "archives"
    with local_write_errors(Path(cache_dir), "cache_dir", CACHE_DIR_FIX):
        return _extract_cached(source, root, limits)


def _extract_cached(source: ArchiveSource, root: Path, limits: ArchiveLimits) -> Path:
    with _seekable(source) as (stream, label):
        digest = _content_hash(source, stream)
        final = root / digest
        if final.is_dir():
            log.debug("Reusing extraction of %s at %s", label, final)
            return final
        with _open_archive(stream, label) as reader:
            entries = reader.entries()
            model_root = _check_entries(entries, label, limits)
            _check_disk_space(root, entries, label)
            remove_temp_dirs(root, older_than=STALE_TEMP_SECONDS)
            temp = new_temp_dir(root, digest[:16])
            try:
                count = _extract(reader, entries, model_root, temp, label)
                if publish_dir(temp, final):
                    log.info("Extracted %d files of %s to %s", count, label, final)
            finally:
                remove_tree(temp)
    return final


# Reading the source ---------------------------------------------------------------

_hash_memo: dict[tuple[str, int, int, int, int], str] = {}
_hash_memo_lock = threading.Lock()


@contextmanager
def _seekable(source: ArchiveSource) -> Iterator[tuple[IO[bytes], str]]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield io.BytesIO(source), f"<archive of {len(source)} bytes>"
        return
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            with open(path, "rb") as stream:
                yield stream, path
        except IsADirectoryError:
            raise ArchiveError(
                f"{path!r} is a folder, not an archive file.", path=path
            ) from None
        return
    label = f"<archive file object {getattr(source, 'name', type(source).__name__)}>"
    if _is_seekable(source):
        yield source, label
        return
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        shutil.copyfileobj(source, spool, _CHUNK)
        spool.seek(0)
        yield spool, label


def _is_seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, ValueError, OSError):
        return False


def _content_hash(source: ArchiveSource, stream: IO[bytes]) -> str:
    memo_key = None
    if isinstance(source, (str, os.PathLike)):
        status = os.fstat(stream.fileno())
        memo_key = (
            os.path.abspath(os.fspath(source)),
            status.st_dev,
            status.st_ino,
            status.st_size,
            status.st_mtime_ns,
        )
        with _hash_memo_lock:
            cached = _hash_memo.get(memo_key)
        if cached is not None:
            return cached
    start = stream.tell()
    sha = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        sha.update(chunk)
    stream.seek(start)
    digest = sha.hexdigest()
    if memo_key is not None:
        with _hash_memo_lock:
            _hash_memo[memo_key] = digest
    return digest


# Archive formats --------------------------------------------------------------------


class _ZipReader:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive

    def entries(self) -> list[_Entry]:
        entries = []
        for info in self.archive.infolist():
            mode = info.external_attr >> 16
            name = info.filename
            if stat.S_ISLNK(mode):
                target = self.archive.read(info).decode("utf-8", "surrogateescape")
                entries.append(_Entry(name, _SYMLINK, 0, info, target))
            elif info.is_dir() or stat.S_ISDIR(mode):
                entries.append(_Entry(name, _DIR, 0, info))
            elif _is_special(mode):
                entries.append(_Entry(name, _special_kind(mode), 0, info))
            else:
                entries.append(_Entry(name, _FILE, info.file_size, info))
        return entries

    def open(self, entry: _Entry) -> IO[bytes]:
        return self.archive.open(entry.member)


class _TarReader:
    def __init__(self, archive: tarfile.TarFile) -> None:
        self.archive = archive

    def entries(self) -> list[_Entry]:
        entries = []
        for info in self.archive.getmembers():
            if info.isreg():
                entries.append(_Entry(info.name, _FILE, info.size, info))
            elif info.isdir():
                entries.append(_Entry(info.name, _DIR, 0, info))
            elif info.issym():
                entries.append(_Entry(info.name, _SYMLINK, 0, info, info.linkname))
            elif info.islnk():
                entries.append(_Entry(info.name, _HARDLINK, 0, info, info.linkname))
            elif info.ischr() or info.isblk():
                entries.append(_Entry(info.name, "device file", 0, info))
            elif info.isfifo():
                entries.append(_Entry(info.name, "FIFO", 0, info))
            else:
                entries.append(_Entry(info.name, f"tar type {info.type!r}", 0, info))
        return entries

    def open(self, entry: _Entry) -> IO[bytes]:
        stream = self.archive.extractfile(entry.member)
        if stream is None:
            raise ArchiveError(f"tar entry {entry.name!r} has no data to read.")
        return stream


def _is_special(mode: int) -> bool:
    return any(
        check(mode)
        for check in (stat.S_ISCHR, stat.S_ISBLK, stat.S_ISFIFO, stat.S_ISSOCK)
    )


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device file"


@contextmanager
def _open_archive(stream: IO[bytes], label: str) -> Iterator[_ZipReader | _TarReader]:
    start = stream.tell()
    if zipfile.is_zipfile(stream):
        stream.seek(start)
        try:
            with zipfile.ZipFile(stream) as archive:
                yield _ZipReader(archive)
        except zipfile.BadZipFile as exc:
            raise ArchiveError(
                f"{label} is a damaged zip archive ({exc}). Recreate the archive.",
                path=label,
            ) from None
        return
    stream.seek(start)
    try:
        tar_archive = tarfile.open(fileobj=stream, mode="r:*")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(
            f"{label} is not a valid model archive: expected a zip or a tar archive "
            f"(.zip, .tar, .tar.gz, .tgz) or a model folder ({exc}).",
            path=label,
        ) from None
    try:
        with tar_archive:
            yield _TarReader(tar_archive)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise ArchiveError(
            f"{label} is a damaged tar archive ({exc}). Recreate the archive.",
            path=label,
        ) from None


# Checks -------------------------------------------------------------------------


def _check_entries(entries: list[_Entry], label: str, limits: ArchiveLimits) -> str:
    """Validate every entry and return the model root inside the archive: ``""``
    for the archive root, or the name of its single top-level folder."""
    kinds: dict[str, str] = {}
    for entry in entries:
        entry.name = _normalize(entry.name, label)
        if entry.kind not in (_FILE, _DIR, _SYMLINK, _HARDLINK):
            raise _unsafe(label, entry.name, f"is a {entry.kind}")
        _check_duplicate(entry, kinds, label)
        kinds[entry.name] = entry.kind
    model_root = _find_model_root(kinds, label)
    links = {name for name, kind in kinds.items() if kind == _SYMLINK}
    for entry in _selected(entries, model_root):
        _check_parents(entry.name, links, label)
        if entry.kind == _SYMLINK:
            _check_symlink(entry, model_root, label)
        elif entry.kind == _HARDLINK:
            _check_hardlink(entry, kinds, model_root, label)
    _check_limits(entries, label, limits)
    return model_root


def _normalize(name: str, label: str) -> str:
    if "\x00" in name:
        raise _unsafe(label, name, "contains a NUL character")
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise _unsafe(label, name, "is an absolute path")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _unsafe(label, name, "contains '..'")
    return "/".join(parts)


def _check_duplicate(entry: _Entry, kinds: dict[str, str], label: str) -> None:
    if entry.name == "":
        if entry.kind != _DIR:
            raise _unsafe(label, entry.name, "has an empty name")
        return
    earlier = kinds.get(entry.name)
    if earlier is not None and not (earlier == _DIR and entry.kind == _DIR):
        raise _unsafe(label, entry.name, "appears more than once")


def _find_model_root(kinds: dict[str, str], label: str) -> str:
    if kinds.get(CONFIG_FILE) == _FILE:
        return ""
    top_level: dict[str, str] = {}
    for name, kind in kinds.items():
        if not name:
            continue
        first, _, rest = name.partition("/")
        if first in IGNORED_TOP_LEVEL or first.startswith("."):
            continue
        top_level[first] = _DIR if rest else kind
    if len(top_level) == 1:
        ((folder, kind),) = top_level.items()
        if kind == _DIR and kinds.get(f"{folder}/{CONFIG_FILE}") == _FILE:
            return folder
    listing = ", ".join(
        f"{name}/" if kind == _DIR else name for name, kind in sorted(top_level.items())
    )
    raise ArchiveError(
        f"{label} contains no model: expected {CONFIG_FILE} at the archive root or "
        f"inside exactly one top-level folder, but the top level contains "
        f"{listing or 'nothing'}. Archive the model folder that holds {CONFIG_FILE}.",
        path=label,
    )


def _selected(entries: list[_Entry], model_root: str) -> Iterator[_Entry]:
    """Yield the entries that belong to the model folder."""
    prefix = f"{model_root}/" if model_root else ""
    for entry in entries:
        if not entry.name or not entry.name.startswith(prefix):
            continue
        first = entry.name.partition("/")[0]
        if not model_root and (first in IGNORED_TOP_LEVEL or first.startswith(".")):
            continue
        yield entry


def _check_parents(name: str, links: set[str], label: str) -> None:
    parts = name.split("/")
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        if parent in links:
            raise _unsafe(label, name, f"is written through the link {parent!r}")


def _check_symlink(entry: _Entry, model_root: str, label: str) -> None:
    target = entry.link.replace("\\", "/")
    if not target or target.startswith("/") or (len(target) > 1 and target[1] == ":"):
        raise _unsafe(
            label, entry.name, f"is a link to {entry.link!r} outside the model"
        )
    resolved = os.path.normpath(os.path.join(os.path.dirname(entry.name), target))
    if not _inside(resolved, model_root):
        raise _unsafe(
            label, entry.name, f"is a link to {entry.link!r} outside the model"
        )


def _check_hardlink(
    entry: _Entry, kinds: dict[str, str], model_root: str, label: str
) -> None:
    try:
        target = _normalize(entry.link, label)
    except UnsafeArchiveError:
        raise _unsafe(
            label, entry.name, f"is a hard link to {entry.link!r} outside the model"
        ) from None
    if not _inside(target, model_root) or kinds.get(target) != _FILE:
        raise _unsafe(
            label,
            entry.name,
            f"is a hard link to {entry.link!r}, which is not a file of the model",
        )
    entry.link = target


def _inside(path: str, model_root: str) -> bool:
    path = path.replace(os.sep, "/")
    if path == ".." or path.startswith("../") or path.startswith("/"):
        return False
    if not model_root:
        return True
    return path == model_root or path.startswith(f"{model_root}/")


def _check_limits(entries: list[_Entry], label: str, limits: ArchiveLimits) -> None:
    files = [e for e in entries if e.kind in (_FILE, _SYMLINK, _HARDLINK)]
    if len(files) > limits.max_files:
        raise _unsafe(
            label,
            files[limits.max_files].name,
            f"is file number {limits.max_files + 1}, over the limit of "
            f"{limits.max_files} files. Raise max_archive_files in the finder's "
            "config if the archive is trusted",
        )
    total = 0
    for entry in files:
        total += entry.size
        if total > limits.max_bytes:
            raise _unsafe(
                label,
                entry.name,
                f"brings the uncompressed size to {total} bytes, over the limit of "
                f"{limits.max_bytes} bytes. Raise max_archive_bytes in the finder's "
                "config if the archive is trusted",
            )


def _check_disk_space(root: Path, entries: list[_Entry], label: str) -> None:
    needed = sum(entry.size for entry in entries)
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if needed > free:
        raise ArchiveError(
            f"{label} needs {needed} bytes to extract but {root} has {free} bytes "
            "free. Free disk space or set cache_dir to a larger disk.",
            path=label,
        )


def _unsafe(label: str, name: str, reason: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"Unsafe archive {label}: entry {name!r} {reason}. Nothing was extracted.",
        path=label,
        entry=name,
    )


# Extraction -----------------------------------------------------------------------


def _extract(
    reader: _ZipReader | _TarReader,
    entries: list[_Entry],
    model_root: str,
    temp: Path,
    label: str,
) -> int:
    strip = len(model_root) + 1 if model_root else 0
    count = 0
    for entry in _selected(entries, model_root):
        relative = entry.name[strip:]
        if not relative:
            continue
        target = temp.joinpath(*relative.split("/"))
        if entry.kind == _DIR:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == _SYMLINK:
            os.symlink(entry.link, target)
        elif entry.kind == _HARDLINK:
            source = temp.joinpath(*entry.link[strip:].split("/"))
            shutil.copyfile(source, target, follow_symlinks=False)
        else:
            _write_file(reader, entry, target, label)
        count += 1
    return count


def _write_file(
    reader: _ZipReader | _TarReader, entry: _Entry, target: Path, label: str
) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    written = 0
    try:
        with reader.open(entry) as source:
            with os.fdopen(os.open(target, flags, 0o644), "wb") as out:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    if written > entry.size:
                        raise _unsafe(
                            label, entry.name, "holds more data than it declares"
                        )
                    out.write(chunk)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
        raise ArchiveError(
            f"{label}: entry {entry.name!r} cannot be read ({exc}). Recreate the "
            "archive.",
            path=label,
        ) from None
    except RuntimeError as exc:  # zipfile raises it for encrypted entries
        raise ArchiveError(
            f"{label}: entry {entry.name!r} cannot be read ({exc}). Store the model "
            "in an archive without a password.",
            path=label,
        ) from None
