"""The REMOTE finder: a model folder or archive at a URL, through fsspec.

``s3://`` URLs need the ``s3`` extra (s3fs); any other fsspec protocol works
when its package is installed. Models are downloaded into a local cache keyed
by the URL and the objects' ETags or versions, so an unchanged model is not
downloaded again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import LocalStorageError, ModelNotFoundError, RemoteStorageError
from ..model_management.base import ModelFinder, ValidationContext
from ..modules import ModuleConfig
from ._redact import protect_secrets
from ._remote_fs import (
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

if TYPE_CHECKING:
    from ._download import CachedModel

log = logging.getLogger(__name__)


class RemoteModelFinder(ModelFinder):
    """Find a model stored at a URL such as ``s3://bucket/models/foo``.

    The URL names a folder (every object under ``foo/``) or one archive object
    (``foo.zip``), never a bare key prefix. See ``docs/storage.md``.

    Config:
        base_url: Prefix for identifiers that are not URLs, such as
            ``s3://bucket/models``; ``""`` accepts URLs only.
        cache_dir: Local cache folder; ``""`` means the per-user default.
        endpoint_url, region, anonymous, profile: S3 settings; empty values
            leave botocore to read the standard AWS variables and files.
        storage_options: More fsspec options for the file system.
        max_concurrency: Files downloaded at once.
        offline: Load from the cache only, never contacting the store.
        progress: ``auto``, ``bar``, ``log`` or ``none``.
        progress_interval: Time between progress log lines, such as ``10s``.
        lock_timeout: Maximum wait for another process's download of a URL.
        max_archive_bytes, max_archive_files: Limits of a remote archive.
    """

    name: ClassVar[str] = "REMOTE"

    def __init__(self, config: Mapping[str, Any], instance_name: str) -> None:
        super().__init__(config, instance_name)
        # Imported here: validating the config, at every configuration load,
        # needs only the class.
        from ._download import RemoteCache

        self.settings: RemoteSettings = remote_settings(config)
        self._cache = RemoteCache(self.settings.cache_dir)
        self._filesystems: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def validate_config(
        cls, config: Mapping[str, Any], context: ValidationContext
    ) -> None:
        validate_remote_settings(config, context)

    def cache_key(self, model_path: Any, **kwargs: Any) -> Hashable | None:
        """Return ``("REMOTE", url)``; the model's version is checked on load."""
        try:
            return ("REMOTE", self.url_of(model_path))
        except ModelNotFoundError:
            return None

    def url_of(self, model_path: Any) -> str:
        """Return the normalized URL that ``model_path`` names.

        Raises:
            ModelNotFoundError: ``model_path`` is not a URL and no ``base_url``
                is configured.
        """
        if isinstance(model_path, os.PathLike):
            model_path = os.fspath(model_path)
        if not isinstance(model_path, str) or not model_path:
            raise self._not_a_url(model_path)
        if "://" not in model_path:
            if not self.settings.base_url:
                raise self._not_a_url(model_path)
            model_path = f"{self.settings.base_url}/{model_path.lstrip('/')}"
        try:
            protocol, path = split_url(model_path)
        except ValueError:
            raise self._not_a_url(model_path) from None
        return f"{protocol}://{path}"

    def find_model(self, model_path: Any, **kwargs: Any) -> ModuleConfig:
        """Download the model at ``model_path`` unless cached, and read its
        ``config.yml``.

        Raises:
            ModelNotFoundError: Nothing is stored at the URL, the bucket does
                not exist, or the finder is offline and the URL is not cached.
            RemoteStorageError: The store is unreachable, the credentials are
                missing or rejected, or a download failed.
            ArchiveError: The URL names an archive that is not valid.
        """
        folder = self.fetch(model_path)
        try:
            return ModuleConfig.load(folder)
        except ModelNotFoundError:
            raise ModelNotFoundError(
                f"config.yml is missing at the top level of "
                f"{display_url(self.url_of(model_path))}, so it is not a saved model. "
                "Point the URL at the folder that contains config.yml.",
                model_path=model_path,
                finder=self.instance_name,
            ) from None

    def fetch(self, model_path: Any) -> Path:
        """Return the local folder that contains the files at ``model_path``,
        downloading or extracting them first unless the cache has them.

        Unlike :meth:`find_model` it does not read ``config.yml``, so other
        finders can use it for folders of any format. Do not modify the folder:
        it is shared by every load of the URL.

        Raises:
            ModelNotFoundError, RemoteStorageError, ArchiveError: As for
                :meth:`find_model`.
        """
        url = self.url_of(model_path)
        cached = self._cached_offline(url) if self.settings.offline else None
        if cached is None:
            cached = self._fetch(url)
        if cached.kind != "archive":
            return cached.folder
        from .archive import extract_model_archive

        return extract_model_archive(
            cached.archive_path, self.settings.cache_dir, self.settings.limits
        )

    def _cached_offline(self, url: str) -> CachedModel:
        cached = self._cache.published(url)
        if cached is None:
            raise ModelNotFoundError(
                f"{display_url(url)} is not in the cache {self._cache.root} and "
                f"finder {self.instance_name!r} is offline. Load it once with "
                "offline: false, or set cache_dir to a cache that holds it.",
                model_path=url,
                finder=self.instance_name,
            )
        log.debug("Offline: using %s for %s", cached.folder, display_url(url))
        return cached

    def _fetch(self, url: str) -> CachedModel:
        protocol = split_url(url)[0]
        shown = display_url(url)
        fs = self._filesystem(protocol)
        path = fs_path(fs, url)
        # Loggers of client modules imported since the last load get the filter.
        protect_secrets(())
        try:
            listing = list_model(fs, path, shown)
            if listing is None:
                raise missing_location(fs, protocol, path, shown)
            cached = self._cache.lookup(listing)
            if cached is not None:
                log.debug("%s is unchanged; using %s", shown, cached.folder)
                return cached
            return self._cache.fetch(
                fs,
                listing,
                max_concurrency=self.settings.max_concurrency,
                progress=self.settings.progress,
                progress_interval=self.settings.progress_interval,
                lock_timeout=self.settings.lock_timeout,
            )
        except ModelNotFoundError as exc:
            exc.finder = self.instance_name
            raise
        except (RemoteStorageError, LocalStorageError, ImportError):
            raise
        except FileNotFoundError:
            raise self._missing(fs, protocol, path, shown) from None
        except Exception as exc:
            raise self._translate(exc, protocol, shown) from None

    def _filesystem(self, protocol: str) -> Any:
        with self._lock:
            fs = self._filesystems.get(protocol)
            if fs is None:
                fs = self._filesystems[protocol] = make_filesystem(
                    protocol, self._options(protocol)
                )
            return fs

    def _options(self, protocol: str) -> dict[str, Any]:
        s = self.settings
        return filesystem_options(
            protocol,
            s.storage_options,
            endpoint_url=s.endpoint_url,
            region=s.region,
            anonymous=s.anonymous,
            profile=s.profile,
        )

    def _missing(
        self, fs: Any, protocol: str, path: str, url: str
    ) -> ModelNotFoundError:
        try:
            error = missing_location(fs, protocol, path, url)
        except Exception:  # the check only sharpens the message
            error = ModelNotFoundError(f"No model at {url}.", model_path=url)
        error.finder = self.instance_name
        return error

    def _translate(self, exc: Exception, protocol: str, url: str) -> Exception:
        secrets = secrets_of(self._options(protocol))
        endpoint = describe_endpoint(protocol, self.settings.endpoint_url)
        error = translate_error(exc, url, secrets, endpoint)
        log.debug("Finder %r failed to read %s: %s", self.instance_name, url, error)
        return error

    def _not_a_url(self, model_path: Any) -> ModelNotFoundError:
        return ModelNotFoundError(
            f"Finder {self.instance_name!r} ({self.name}) takes a URL such as "
            f"s3://bucket/models/foo, got {model_path!r:.80}. Pass a URL, or set "
            "base_url in the finder's config for relative names.",
            model_path=model_path,
            finder=self.instance_name,
        )
