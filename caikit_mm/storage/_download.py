"""Downloading a listed remote model into the local cache.

Each URL has a folder ``remote/<sha256 of the URL>`` in the cache, containing
``.lock``, ``current.json`` (the last version published) and one folder per
version, named by the digest of the objects' names, sizes and ETags. A version
is downloaded into a ``.tmp-*`` folder and every file's size is checked. Only
then is the folder renamed into place. A file lock keeps two processes from
downloading the same URL at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..errors import RemoteStorageError
from ._cache import (
    CACHE_DIR_FIX,
    check_free_space,
    local_write_errors,
    new_temp_dir,
    publish_dir,
    remove_temp_dirs,
    remove_tree,
    write_file_atomic,
)
from ._remote_fs import RemoteListing, RemoteObject

log = logging.getLogger(__name__)

CURRENT_FILE: Final = "current.json"
LOCK_FILE: Final = ".lock"
VERSION_PREFIX: Final = "v-"

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@dataclass(frozen=True)
class CachedModel:
    """A published version of a remote model in the cache.

    Attributes:
        folder: The version's folder.
        kind: ``folder``, or ``archive`` when ``folder`` contains one archive file.
        archive_name: The archive's file name, for ``archive``.
    """

    folder: Path
    kind: str
    archive_name: str = ""

    @property
    def archive_path(self) -> Path:
        """The downloaded archive file, for ``archive``."""
        return self.folder / self.archive_name


class RemoteCache:
    """The cache folder of remote models, ``<cache_dir>/remote``."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir / "remote"

    def url_dir(self, url: str) -> Path:
        """Return the folder that contains every cached version of ``url``."""
        return self.root / hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]

    def published(self, url: str) -> CachedModel | None:
        """Return the version of ``url`` published last, or ``None``."""
        url_dir = self.url_dir(url)
        try:
            record = json.loads((url_dir / CURRENT_FILE).read_text(encoding="utf-8"))
            folder = url_dir / f"{VERSION_PREFIX}{record['version']}"
            model = CachedModel(folder, record["kind"], record.get("archive_name", ""))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return model if folder.is_dir() else None

    def lookup(self, listing: RemoteListing) -> CachedModel | None:
        """Return the cached copy of ``listing``'s version, or ``None``."""
        folder = self._version_dir(listing)
        if not folder.is_dir():
            return None
        return _cached_model(folder, listing)

    def fetch(
        self,
        fs: Any,
        listing: RemoteListing,
        *,
        max_concurrency: int,
        progress: str,
        progress_interval: float,
        lock_timeout: float,
    ) -> CachedModel:
        """Return the cached copy of ``listing``, downloading it first unless
        this or another process already has.

        Raises:
            RemoteStorageError: The lock was not acquired in ``lock_timeout``
                seconds, or a downloaded file's size differs from the listing.
            LocalStorageError: The cache folder is read-only, or its disk has
                less free space than the listed sizes or filled up.
        """
        cache_dir = self.root.parent
        with local_write_errors(cache_dir, "cache_dir", CACHE_DIR_FIX):
            self._fetch_locked(
                fs, listing, max_concurrency, progress, progress_interval, lock_timeout
            )
        return _cached_model(self._version_dir(listing), listing)

    def _fetch_locked(
        self,
        fs: Any,
        listing: RemoteListing,
        max_concurrency: int,
        progress: str,
        progress_interval: float,
        lock_timeout: float,
    ) -> None:
        url_dir = self.url_dir(listing.url)
        final = self._version_dir(listing)
        with _locked(url_dir, lock_timeout, listing.url):
            if not final.is_dir():
                remove_temp_dirs(url_dir)
                check_free_space(
                    url_dir,
                    listing.total_bytes,
                    f"Downloading {listing.url}",
                    CACHE_DIR_FIX,
                )
                temp = new_temp_dir(url_dir, listing.version[:12])
                try:
                    reporter = Progress(listing, progress, progress_interval)
                    download_objects(fs, listing, temp, max_concurrency, reporter)
                    publish_dir(temp, final)
                finally:
                    remove_tree(temp)
            self._set_current(listing)

    def _version_dir(self, listing: RemoteListing) -> Path:
        return self.url_dir(listing.url) / f"{VERSION_PREFIX}{listing.version}"

    def _set_current(self, listing: RemoteListing) -> None:
        """Record ``listing`` as the current version and remove older ones. The
        caller must hold the URL's lock."""
        url_dir = self.url_dir(listing.url)
        record: dict[str, Any] = {
            "url": listing.url,
            "version": listing.version,
            "kind": listing.kind,
        }
        if listing.kind == "archive":
            record["archive_name"] = listing.objects[0].relative
        current = url_dir / CURRENT_FILE
        data = json.dumps(record, indent=1).encode("utf-8")
        if current.is_file() and current.read_bytes() == data:
            return
        write_file_atomic(current, data)
        keep = f"{VERSION_PREFIX}{listing.version}"
        for old in url_dir.glob(f"{VERSION_PREFIX}*"):
            if old.name != keep:
                # NOTE: a process that still reads files of the old version
                # lazily loses them; loaded models that read everything at
                # load time are unaffected.
                remove_tree(old)
                log.debug("Removed old cached version %s of %s", old, listing.url)


def _cached_model(folder: Path, listing: RemoteListing) -> CachedModel:
    if listing.kind == "archive":
        return CachedModel(folder, "archive", listing.objects[0].relative)
    return CachedModel(folder, "folder")


@contextmanager
def _locked(url_dir: Path, timeout: float, url: str) -> Iterator[None]:
    """Hold the URL's lock against other threads and other processes."""
    try:
        import filelock
    except ImportError as exc:
        raise ImportError(
            "Downloading models needs filelock: pip install 'caikit_mm[s3]'"
        ) from exc
    url_dir.mkdir(parents=True, exist_ok=True)
    key = str(url_dir)
    with _thread_locks_guard:
        thread_lock = _thread_locks.setdefault(key, threading.Lock())
    if not thread_lock.acquire(timeout=timeout):
        raise _lock_timeout(url, timeout, url_dir)
    try:
        try:
            with filelock.FileLock(str(url_dir / LOCK_FILE), timeout=timeout):
                yield
        except filelock.Timeout:
            raise _lock_timeout(url, timeout, url_dir) from None
    finally:
        thread_lock.release()


def _lock_timeout(url: str, timeout: float, url_dir: Path) -> RemoteStorageError:
    return RemoteStorageError(
        f"Another download of {url} held the cache lock {url_dir / LOCK_FILE} for "
        f"more than {timeout:g} s. Wait for it to finish, or raise lock_timeout in "
        "the finder's config.",
        url=url,
    )


# Downloading -------------------------------------------------------------------------


def download_objects(
    fs: Any,
    listing: RemoteListing,
    target: Path,
    max_concurrency: int,
    reporter: Progress,
) -> None:
    """Download every object of ``listing`` into ``target`` in parallel and
    check each file's size.

    Raises:
        RemoteStorageError: A file's size differs from the listed size.
        Exception: The file system's own error for the first failed object.
    """
    objects = sorted(listing.objects, key=lambda obj: -obj.size)
    for obj in objects:
        _local_path(target, obj).parent.mkdir(parents=True, exist_ok=True)
    try:
        if getattr(fs, "async_impl", False):
            _download_async(fs, objects, target, listing.url, max_concurrency, reporter)
        else:
            _download_threads(
                fs, objects, target, listing.url, max_concurrency, reporter
            )
    finally:
        reporter.close()


def _download_async(
    fs: Any,
    objects: list[RemoteObject],
    target: Path,
    url: str,
    max_concurrency: int,
    reporter: Progress,
) -> None:
    """Download on the file system's own event loop, as its bulk ``get`` does,
    with at most ``max_concurrency`` objects in flight."""
    import asyncio

    from fsspec.asyn import sync

    async def download_all() -> None:
        limit = asyncio.Semaphore(max_concurrency)

        async def one(obj: RemoteObject) -> None:
            async with limit:
                callback = reporter.callback()
                local = _local_path(target, obj)
                await fs._get_file(obj.path, str(local), callback=callback)
                _check_size(local, obj, url, callback)

        tasks = [asyncio.ensure_future(one(obj)) for obj in objects]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    sync(fs.loop, download_all)


def _download_threads(
    fs: Any,
    objects: list[RemoteObject],
    target: Path,
    url: str,
    max_concurrency: int,
    reporter: Progress,
) -> None:
    """Download with a thread per object in flight, for file systems without
    an event loop."""

    def one(obj: RemoteObject) -> None:
        callback = reporter.callback()
        local = _local_path(target, obj)
        fs.get_file(obj.path, str(local), callback=callback)
        _check_size(local, obj, url, callback)

    workers = max(1, min(max_concurrency, len(objects)))
    with ThreadPoolExecutor(workers, thread_name_prefix="caikit-mm-dl") as pool:
        futures = [pool.submit(one, obj) for obj in objects]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in done:
            future.result()


def _local_path(target: Path, obj: RemoteObject) -> Path:
    return target.joinpath(*obj.relative.split("/"))


def _check_size(local: Path, obj: RemoteObject, url: str, callback: Any) -> None:
    size = local.stat().st_size
    if size != obj.size:
        raise RemoteStorageError(
            f"Downloaded {size} bytes of {url}/{obj.relative} but the store listed "
            f"{obj.size} bytes; the object may have changed during the download. "
            "Load the model again.",
            url=url,
        )
    callback.finish(size)


class Progress:
    """Progress of one download: a tqdm bar on a terminal, otherwise a log line
    at most every ``interval`` seconds with bytes done and total.

    ``mode`` is ``auto`` (a bar when tqdm is installed and stderr is a
    terminal), ``bar``, ``log`` or ``none`` (only the final log line).
    """

    def __init__(self, listing: RemoteListing, mode: str, interval: float) -> None:
        self.url = listing.url
        self.total = listing.total_bytes
        self.files = len(listing.objects)
        self.done = 0
        self.interval = interval
        self._lock = threading.Lock()
        self._start = self._last_log = time.monotonic()
        self._log_lines = mode in ("auto", "log")
        self._bar = _make_bar(listing, mode)
        if self._bar is not None:
            self._log_lines = False
        log.info(
            "Downloading %d files (%s) from %s",
            self.files,
            _format_bytes(self.total),
            self.url,
        )

    def callback(self) -> Any:
        """Return an fsspec callback that reports one file's bytes here."""
        return _make_callback(self)

    def advance(self, count: int) -> None:
        """Count ``count`` more bytes as downloaded."""
        with self._lock:
            self.done += count
            if self._bar is not None:
                self._bar.update(count)
            now = time.monotonic()
            if self._log_lines and now - self._last_log >= self.interval:
                self._last_log = now
                log.info(
                    "Downloading %s: %s of %s",
                    self.url,
                    _format_bytes(self.done),
                    _format_bytes(self.total),
                )

    def close(self) -> None:
        """Close the bar and log the outcome."""
        if self._bar is not None:
            self._bar.close()
        seconds = time.monotonic() - self._start
        log.info(
            "Downloaded %s of %s from %s in %.2f s",
            _format_bytes(self.done),
            _format_bytes(self.total),
            self.url,
            seconds,
        )


def _make_bar(listing: RemoteListing, mode: str) -> Any:
    if mode == "none" or mode == "log":
        return None
    if mode == "auto" and not _stderr_is_terminal():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        if mode == "bar":
            log.warning(
                "progress is 'bar' but tqdm is not installed; logging progress "
                "instead. Install it with pip install 'caikit_mm[progress]'."
            )
        return None
    return tqdm(
        total=listing.total_bytes,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=listing.url.rsplit("/", 1)[-1] or listing.url,
    )


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _make_callback(progress: Progress) -> Any:
    from fsspec.callbacks import Callback

    class _FileCallback(Callback):  # type: ignore[misc]
        """Forwards one file's byte counts to the download's progress."""

        def __init__(self) -> None:
            super().__init__()
            self.reported = 0

        def relative_update(self, inc: int = 1) -> None:
            self.reported += inc
            progress.advance(inc)

        def finish(self, size: int) -> None:
            # Some file systems copy without calling the callback.
            if size > self.reported:
                progress.advance(size - self.reported)
                self.reported = size

    return _FileCallback()


def _format_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{count} B"
        value /= 1024
    return f"{count} B"
