"""Copying model folders between this machine and a URL, without the cache.

:func:`upload_folder` is what a trainer uses to save a model to ``s3://...``;
:func:`download_folder` copies a remote model (a folder or one archive) into a
local folder. :func:`folder_exists` and :func:`delete_folder` check for and
remove a model folder at a URL. All of them take the same config keys as the
REMOTE finder (``endpoint_url``, ``region``, ``anonymous``, ``profile``,
``storage_options``, ``max_concurrency``, ``progress``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from ..errors import CaikitMMError, ModelFormatError, RemoteStorageError
from ..model_management.base import ValidationContext
from ..modules import CONFIG_FILE
from ._cache import check_free_space, local_write_errors, new_temp_dir, remove_tree
from ._download import Progress, download_objects
from ._remote_fs import (
    BUCKET_PROTOCOLS,
    RemoteListing,
    describe_endpoint,
    display_url,
    filesystem_options,
    fs_path,
    list_model,
    make_filesystem,
    missing_location,
    secrets_of,
    split_url,
    translate_error,
)
from ._settings import RemoteSettings, remote_settings, validate_remote_settings
from .archive import extract_model_archive

log = logging.getLogger(__name__)

# The top-level file of a Hugging Face ``save_pretrained`` folder, which marks a
# model folder that has no config.yml.
HF_CONFIG_FILE: Final = "config.json"
# The end of a full-disk or read-only message of download_folder.
_TARGET_FIX: Final = "pass a folder on a writable disk with enough free space."


def upload_folder(
    folder: str | os.PathLike[str],
    url: str,
    *,
    config: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> int:
    """Upload every file under ``folder`` to ``url`` and return how many.

    ``config.yml``, or ``config.json`` in a Hugging Face save folder without
    ``config.yml``, is uploaded last, so a reader that finds it finds the whole
    model. With ``overwrite``, objects under ``url`` that the folder does not
    have are deleted before that file is written. An upload to an empty
    ``url`` that fails or is interrupted (``KeyboardInterrupt``,
    ``SystemExit``) deletes what it wrote before it re-raises. An interrupted
    upload with ``overwrite`` leaves a mix of old and new objects.

    Args:
        folder: The local model folder.
        url: The destination folder, such as ``s3://bucket/models/foo``.
        config: REMOTE finder settings for the store; ``None`` uses the
            standard AWS variables.
        overwrite: Replace what is stored under ``url``.

    Raises:
        NotADirectoryError: ``folder`` is not a folder.
        ValueError: ``url`` names a whole bucket, such as ``s3://bucket``.
        ModelFormatError: ``folder`` has neither ``config.yml`` nor
            ``config.json`` at its top level.
        RemoteStorageError: ``url`` already contains objects and ``overwrite`` is
            false, or the store cannot be written.
    """
    source = Path(folder)
    if not source.is_dir():
        raise NotADirectoryError(
            f"Cannot upload {str(source)!r}: it is not a folder. Pass the folder "
            "that holds the saved model."
        )
    reject_bucket_root(url, "upload_folder does not upload to")
    marker = _marker_file(source)
    settings = _settings_of(config)
    files = _local_files(source)
    with _remote(url, settings, "Uploading models to") as (fs, path, shown):
        existing = _existing_objects(fs, path)
        if existing and not overwrite:
            raise RemoteStorageError(
                f"{shown} already contains {len(existing)} objects. Pass "
                "overwrite=True to replace them, or upload to another URL.",
                url=shown,
            )
        try:
            _put_model(
                fs, source, path, files, existing, marker, settings.max_concurrency
            )
        except BaseException:
            if not existing:
                _remove_partial_upload(fs, path, shown)
            raise
    log.info("Uploaded %d files from %s to %s", len(files), source, shown)
    return len(files)


def download_folder(
    url: str,
    folder: str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Download the model at ``url`` into ``folder`` and return its path.

    A URL that names an archive object is downloaded and extracted safely, so
    ``folder`` always receives the model folder. The download goes to a
    temporary folder beside ``folder`` and is renamed into place when complete.

    Raises:
        FileExistsError: ``folder`` exists and is not empty.
        ModelNotFoundError: Nothing is stored at ``url``.
        RemoteStorageError: The store cannot be read.
        ArchiveError: ``url`` names an archive that is not valid.
        LocalStorageError: The folder beside ``folder`` is read-only, or its
            disk has less free space than the listed sizes or filled up.
    """
    target = Path(folder).absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(
            f"Cannot download into {str(target)!r}: it exists and is not an empty "
            "folder. Pass a new or empty folder."
        )
    settings = _settings_of(config)
    with _remote(url, settings, "Downloading models from") as (fs, path, shown):
        listing = list_model(fs, path, shown)
        if listing is None:
            raise missing_location(fs, split_url(url)[0], path, shown)
        with local_write_errors(target.parent, "the folder", _TARGET_FIX):
            _download_into(listing, target, fs, settings)
    return target


def _download_into(
    listing: RemoteListing, target: Path, fs: Any, settings: RemoteSettings
) -> None:
    temp = new_temp_dir(target.parent, target.name)
    try:
        check_free_space(
            temp, listing.total_bytes, f"Downloading {listing.url}", _TARGET_FIX
        )
        progress = Progress(listing, settings.progress, settings.progress_interval)
        download_objects(fs, listing, temp, settings.max_concurrency, progress)
        model = temp
        if listing.kind == "archive":
            archive = temp / listing.objects[0].relative
            model = extract_model_archive(archive, temp / "cache", settings.limits)
        if target.exists():
            target.rmdir()
        os.rename(model, target)
    finally:
        remove_tree(temp)


def folder_exists(url: str, *, config: Mapping[str, Any] | None = None) -> bool:
    """Return whether at least one object is stored under ``url/``.

    Only the folder counts: ``s3://b/models/foo`` does not see
    ``models/foo-v2/`` or an object named ``models/foo.zip``.

    Raises:
        ModelNotFoundError: The bucket does not exist.
        RemoteStorageError: The store cannot be read.
    """
    settings = _settings_of(config)
    with _remote(url, settings) as (fs, path, _shown):
        return bool(_existing_objects(fs, path))


def delete_folder(url: str, *, config: Mapping[str, Any] | None = None) -> int:
    """Delete every object under ``url/`` and return how many files it deleted.

    Folder markers (keys that end in ``/``) go too. Siblings that share the
    prefix, such as ``models/foo-v2/`` beside ``models/foo``, stay. An empty
    ``url`` deletes nothing and returns 0.

    Raises:
        ValueError: ``url`` names a whole bucket, such as ``s3://bucket``.
        ModelNotFoundError: The bucket does not exist.
        RemoteStorageError: The store cannot be read or written.
    """
    reject_bucket_root(url, "delete_folder does not delete")
    settings = _settings_of(config)
    with _remote(url, settings) as (fs, path, shown):
        existing = _existing_objects(fs, path)
        if not existing:
            return 0
        fs.rm(path, recursive=True)
        fs.invalidate_cache(path)
    log.info("Deleted %d files under %s", len(existing), shown)
    return len(existing)


def _settings_of(config: Mapping[str, Any] | None) -> RemoteSettings:
    """Check and parse the ``config`` argument, rejecting a key that is not a
    REMOTE finder setting, such as a misspelled one."""
    if config is None:
        return remote_settings({})
    if not isinstance(config, Mapping):
        raise TypeError(
            f"config must be a mapping of REMOTE finder settings, such as "
            f"{{'endpoint_url': 'http://127.0.0.1:9000'}}, got {config!r:.80}."
        )
    context = ValidationContext("config", "", {})
    validate_remote_settings(config, context)
    return remote_settings(config)


@contextmanager
def _remote(
    url: str, settings: RemoteSettings, operation: str = "Reading models from"
) -> Iterator[tuple[Any, str, str]]:
    """Yield the file system, the path and the printable URL of ``url``, and
    turn the file system's errors into :class:`RemoteStorageError`.

    ``operation`` starts the message of a missing package, such as
    ``"Uploading models to"``.
    """
    protocol = split_url(url)[0]
    options = filesystem_options(
        protocol,
        settings.storage_options,
        endpoint_url=settings.endpoint_url,
        region=settings.region,
        anonymous=settings.anonymous,
        profile=settings.profile,
    )
    shown = display_url(url)
    fs = make_filesystem(protocol, options, operation)
    path = fs_path(fs, url)
    try:
        yield fs, path, shown
    except (CaikitMMError, FileExistsError, ImportError):
        raise
    except FileNotFoundError:
        raise missing_location(fs, protocol, path, shown) from None
    except Exception as exc:
        endpoint = describe_endpoint(protocol, settings.endpoint_url)
        raise translate_error(exc, shown, secrets_of(options), endpoint) from None


def reject_bucket_root(url: str, message_start: str) -> None:
    """Raise ``ValueError`` when ``url`` names a whole bucket, such as
    ``s3://bucket/``, whose every object an overwrite or a delete would remove.

    ``message_start`` starts the message, such as ``"delete_folder does not delete"``.
    """
    protocol, location = split_url(url)
    if protocol in BUCKET_PROTOCOLS and "/" not in location.strip("/"):
        raise ValueError(
            f"{message_start} the whole bucket {display_url(url)}. Pass the URL of a "
            "folder inside it, with a key prefix such as s3://bucket/models/foo."
        )


def _marker_file(source: Path) -> str:
    """Return the file that marks ``source`` as a saved model and is uploaded
    last: ``config.yml``, or failing that the ``config.json`` of a Hugging Face
    save folder.

    Raises:
        ModelFormatError: ``source`` has neither file at its top level.
    """
    for name in (CONFIG_FILE, HF_CONFIG_FILE):
        if (source / name).is_file():
            return name
    raise ModelFormatError(
        f"Cannot upload {str(source)!r}: it has neither {CONFIG_FILE} nor "
        f"{HF_CONFIG_FILE} at its top level, so it is not a saved model. Pass the "
        f"folder that the model's save() wrote, the one that contains "
        f"{CONFIG_FILE} (or {HF_CONFIG_FILE} for a Hugging Face save folder).",
        path=source,
    )


def _local_files(source: Path) -> list[str]:
    files = []
    for root, _dirs, names in os.walk(source):
        for name in names:
            relative = Path(root, name).relative_to(source)
            files.append(relative.as_posix())
    return sorted(files)


def _existing_objects(fs: Any, path: str) -> list[str]:
    fs.invalidate_cache(path)
    prefix = f"{path}/"
    found = fs.find(path, withdirs=False)
    return [name[len(prefix) :] for name in found if name.startswith(prefix)]


def _put_model(
    fs: Any,
    source: Path,
    path: str,
    files: list[str],
    existing: list[str],
    marker: str,
    concurrency: int,
) -> None:
    first = [name for name in files if name != marker]
    _put_files(fs, source, path, first, concurrency)
    stale = sorted(set(existing) - set(files))
    if stale:
        fs.rm([f"{path}/{name}" for name in stale])
    if marker in files:
        _put_files(fs, source, path, [marker], 1)


def _remove_partial_upload(fs: Any, path: str, shown: str) -> None:
    """Delete the objects of a failed upload to an empty URL, as far as possible."""
    try:
        fs.rm(path, recursive=True)
    except FileNotFoundError:
        return
    except Exception as exc:  # noqa: BLE001 - the upload's own error matters more
        log.warning("Could not delete the partial upload at %s: %s", shown, exc)
        return
    log.info("Deleted the partial upload at %s", shown)


def _put_files(
    fs: Any, source: Path, path: str, names: list[str], concurrency: int
) -> None:
    if not names:
        return
    workers = max(1, min(concurrency, len(names)))
    with ThreadPoolExecutor(workers, thread_name_prefix="caikit-mm-up") as pool:
        futures = [
            pool.submit(fs.put_file, str(source / name), f"{path}/{name}")
            for name in names
        ]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in done:
            future.result()
