"""fsspec file systems for model URLs: options, listing and error messages.

Messages name the URL and what to check, and pass through :func:`redact` so
that no secret key or session token reaches an error or a log line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..errors import ModelNotFoundError, RemoteStorageError
from ._cache import ARCHIVE_SUFFIXES
from ._redact import protect_secrets, redact

log = logging.getLogger(__name__)

S3_PROTOCOLS: Final = ("s3", "s3a")
BUCKET_PROTOCOLS: Final = (*S3_PROTOCOLS, "gs", "gcs", "az", "abfs", "abfss")
SECRET_ENV: Final = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
# Option names whose values are secrets, in s3fs, botocore and other fsspec
# implementations.
SECRET_OPTIONS: Final = frozenset(
    {
        "secret",
        "token",
        "password",
        "aws_secret_access_key",
        "aws_session_token",
        "account_key",
        "sas_token",
        "client_secret",
    }
)

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")
_ERROR_DETAIL_CHARS: Final = 300


@dataclass(frozen=True)
class RemoteObject:
    """One object of a remote model.

    Attributes:
        path: The object's path as the file system names it (``bucket/key``).
        relative: Its path inside the model folder, ``/``-separated.
        size: Size in bytes, as listed.
        tag: ETag, version id or modification time, whichever the store reports.
    """

    path: str
    relative: str
    size: int
    tag: str


@dataclass(frozen=True)
class RemoteListing:
    """What a model URL names: a folder of objects or one archive object.

    Attributes:
        url: The model URL, without any user information.
        kind: ``folder`` or ``archive``.
        objects: The objects to download.
        version: A digest of every object's name, size and tag.
    """

    url: str
    kind: str
    objects: tuple[RemoteObject, ...]
    version: str

    @property
    def total_bytes(self) -> int:
        """The sum of the objects' sizes."""
        return sum(obj.size for obj in self.objects)


def import_fsspec(operation: str = "Reading models from") -> Any:
    """Import ``fsspec``, or raise an ``ImportError`` naming the extra.

    ``operation`` starts the message, such as ``"Uploading models to"``.
    """
    try:
        import fsspec
    except ImportError as exc:
        raise ImportError(
            f"{operation} URLs needs fsspec and, for s3:// URLs, s3fs: "
            "pip install 'caikit_mm[s3]'"
        ) from exc
    return fsspec


def display_url(url: str) -> str:
    """Return ``url`` without user information such as ``key:secret@``."""
    return _USERINFO.sub(r"\1", url)


def split_url(url: str) -> tuple[str, str]:
    """Return the protocol and the path, without a trailing slash, of ``url``."""
    protocol, _, rest = url.partition("://")
    if not rest or not protocol:
        raise ValueError(f"{display_url(url)!r} is not a URL such as s3://bucket/key")
    return protocol.lower(), rest.rstrip("/")


def filesystem_options(
    protocol: str,
    storage_options: Mapping[str, Any],
    *,
    endpoint_url: str = "",
    region: str = "",
    anonymous: bool = False,
    profile: str = "",
) -> dict[str, Any]:
    """Build the fsspec options of ``protocol`` from a finder's config.

    ``endpoint_url``, ``region``, ``anonymous`` and ``profile`` apply to s3://
    URLs; other protocols get ``storage_options`` alone. Unset values leave
    botocore to read the standard AWS variables and files.
    """
    options = {key: value for key, value in storage_options.items()}
    if protocol not in S3_PROTOCOLS:
        return options
    if endpoint_url:
        options["endpoint_url"] = endpoint_url
    if region:
        client_kwargs = dict(options.get("client_kwargs") or {})
        client_kwargs["region_name"] = region
        options["client_kwargs"] = client_kwargs
    if anonymous:
        options["anon"] = True
    if profile:
        options["profile"] = profile
    return options


def make_filesystem(
    protocol: str,
    options: Mapping[str, Any],
    operation: str = "Reading models from",
) -> Any:
    """Create a file system for ``protocol`` that no other caller shares.

    ``operation`` starts the message of a missing package, as in
    :func:`import_fsspec`.
    """
    fsspec = import_fsspec(operation)
    protect_secrets(secrets_of(options))
    try:
        return fsspec.filesystem(protocol, skip_instance_cache=True, **options)
    except ImportError as exc:
        extra = "pip install 'caikit_mm[s3]'" if protocol in S3_PROTOCOLS else ""
        raise ImportError(
            f"{operation} {protocol}:// URLs needs a package that is not installed "
            f"({exc}). {extra or 'Install the fsspec implementation it names.'}"
        ) from exc
    except ValueError as exc:
        raise ValueError(
            f"fsspec has no file system for {protocol}:// URLs ({exc}). Use a "
            "protocol that fsspec knows, such as s3, gs or memory."
        ) from None


def fs_path(fs: Any, url: str) -> str:
    """Return the path of ``url`` as ``fs`` names it, without a trailing slash."""
    return str(fs._strip_protocol(url)).rstrip("/")


def secrets_of(options: Mapping[str, Any]) -> list[str]:
    """Collect the secret values in ``options`` and the AWS environment, so that
    messages can be scrubbed of them."""
    found = [os.environ.get(name, "") for name in SECRET_ENV]
    stack: list[Any] = [options]
    while stack:
        value = stack.pop()
        if isinstance(value, Mapping):
            for key, item in value.items():
                if str(key).lower() in SECRET_OPTIONS and isinstance(item, str):
                    found.append(item)
                else:
                    stack.append(item)
    return sorted({secret for secret in found if len(secret) >= 4}, key=len)[::-1]


# Listing ---------------------------------------------------------------------------


def list_model(fs: Any, path: str, url: str) -> RemoteListing | None:
    """List the objects of the model at ``path``: the objects under ``path/``,
    or the one object ``path`` when it is an archive. Return ``None`` when
    nothing is stored there.

    A sibling that shares the prefix (``foo-v2`` beside ``foo``) is never
    included. Zero-byte folder markers are skipped.

    Raises:
        ModelNotFoundError: The URL names one object that is not an archive.
    """
    fs.invalidate_cache(path)
    found = fs.find(path, detail=True, withdirs=False)
    prefix = f"{path}/"
    objects = []
    single = None
    for name, info in sorted(found.items()):
        name = name.rstrip("/") if info.get("type") == "directory" else name
        if name == path:
            single = info
        elif name.startswith(prefix) and not _is_folder_marker(name, info):
            objects.append(_remote_object(name, name[len(prefix) :], info, url))
    if objects:
        return _listing(url, "folder", objects)
    if single is not None and single.get("type", "file") == "file":
        return _archive_listing(path, single, url)
    _raise_if_unreachable(fs, path)
    return None


def _raise_if_unreachable(fs: Any, path: str) -> None:
    """Raise the connection error behind an empty listing, if there is one.

    Some file systems list nothing when the server cannot be reached: fsspec's
    HTTP one (fsspec 2026.9) skips a folder whose listing fails with any
    ``OSError``. Asking for the path's info again shows the cause.
    """
    failure = None
    try:
        fs.info(path)
    except Exception as exc:  # only a connection failure matters here
        failure = _connection_failure(exc)
    if failure is not None:
        raise failure


def _is_folder_marker(name: str, info: Mapping[str, Any]) -> bool:
    if info.get("type") == "directory":
        return True
    size = int(info.get("size") or 0)
    return size == 0 and (name.endswith("/") or name.endswith("_$folder$"))


def _remote_object(
    path: str, relative: str, info: Mapping[str, Any], url: str
) -> RemoteObject:
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise RemoteStorageError(
            f"Object {relative!r} under {url} has an empty, '.' or '..' path "
            "segment, so it has no safe local name. Rename the object.",
            url=url,
        )
    return RemoteObject(path, relative, int(info.get("size") or 0), _tag(info))


def _tag(info: Mapping[str, Any]) -> str:
    for key in ("VersionId", "version_id", "ETag", "etag", "md5Hash", "generation"):
        value = info.get(key)
        if value:
            return f"{key}={value}"
    for key in ("LastModified", "last_modified", "mtime", "updated", "created"):
        value = info.get(key)
        if value:
            return f"{key}={value}"
    return ""


def _archive_listing(path: str, info: Mapping[str, Any], url: str) -> RemoteListing:
    name = path.rpartition("/")[2]
    if not name.lower().endswith(ARCHIVE_SUFFIXES):
        raise ModelNotFoundError(
            f"{url} is a single object, not a model folder or an archive "
            f"({', '.join(ARCHIVE_SUFFIXES)}). Point the URL at the folder that "
            "holds config.yml, or at an archive of it.",
            model_path=url,
        )
    obj = RemoteObject(path, name, int(info.get("size") or 0), _tag(info))
    return _listing(url, "archive", [obj])


def _listing(url: str, kind: str, objects: list[RemoteObject]) -> RemoteListing:
    described = [[o.relative, o.size, o.tag] for o in objects]
    digest = hashlib.sha256(json.dumps([kind, described]).encode()).hexdigest()
    return RemoteListing(url, kind, tuple(objects), digest[:32])


# Errors -----------------------------------------------------------------------------

_CREDENTIALS_MISSING: Final = frozenset(
    {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}
)
_UNREACHABLE: Final = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ConnectionError",
    }
)
_DENIED_CODES: Final = (
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "Forbidden",
    "403",
)


def translate_error(
    exc: BaseException, url: str, secrets: list[str], endpoint: str
) -> Exception:
    """Turn an exception from fsspec or a client library into an error that
    names ``url`` and what to check, with every secret removed."""
    names = _class_names(exc)
    code = _error_code(exc)
    kind = f"{type(exc).__name__} {code}" if code else type(exc).__name__
    detail = redact(f"{kind}: {exc}", secrets)[:_ERROR_DETAIL_CHARS]
    if names & _CREDENTIALS_MISSING:
        return RemoteStorageError(
            f"No credentials were found to read {url} ({detail}). Set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for "
            "temporary credentials), name a profile with AWS_PROFILE or the "
            "finder's profile key, or set anonymous: true for a public bucket.",
            url=url,
        )
    if names & _UNREACHABLE or _is_connection_error(exc):
        return _unreachable_error(url, detail, endpoint)
    if isinstance(exc, PermissionError) or any(
        code in detail for code in _DENIED_CODES
    ):
        return RemoteStorageError(
            f"Access denied reading {url} ({detail}). Check that the credentials "
            "are valid and not expired, and that they allow listing the bucket and "
            "reading its objects (s3:ListBucket and s3:GetObject).",
            url=url,
        )
    return RemoteStorageError(
        f"Reading {url} failed ({detail}). Check the URL, the endpoint and the "
        "credentials, then retry.",
        url=url,
    )


def _unreachable_error(url: str, detail: str, endpoint: str) -> RemoteStorageError:
    protocol = url.partition("://")[0].lower()
    if protocol in S3_PROTOCOLS:
        return RemoteStorageError(
            f"Cannot connect to the object store at {endpoint} to read {url} "
            f"({detail}). Check endpoint_url in the finder's config or "
            "AWS_ENDPOINT_URL, the network, and that the server is running.",
            url=url,
        )
    hint = ""
    if protocol in ("http", "https"):
        hint = (
            " For an S3-compatible server, use an s3://bucket/key URL and set "
            "endpoint_url in the finder's config to the server's address."
        )
    return RemoteStorageError(
        f"Cannot connect to the server of {url} ({detail}). Check the host and "
        f"port in the URL, the network, and that the server is running.{hint}",
        url=url,
    )


def describe_endpoint(protocol: str, endpoint_url: str) -> str:
    """Name the endpoint a URL is read from, for messages."""
    if endpoint_url:
        return endpoint_url
    if protocol in S3_PROTOCOLS:
        for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
            if os.environ.get(name):
                return f"{os.environ[name]} (from {name})"
        return "the default AWS endpoint"
    return f"the {protocol}:// service"


def missing_location(fs: Any, protocol: str, path: str, url: str) -> ModelNotFoundError:
    """Build the not-found error for ``url``, naming a missing bucket when the
    bucket itself does not exist."""
    bucket = path.split("/", 1)[0]
    if protocol in BUCKET_PROTOCOLS and bucket:
        try:
            bucket_exists = bool(fs.exists(bucket))
        except Exception:  # the bucket check only sharpens the message
            bucket_exists = True
        if not bucket_exists:
            return ModelNotFoundError(
                f"Bucket {bucket!r} of {url} does not exist or is not visible with "
                "these credentials. Check the bucket name and the endpoint.",
                model_path=url,
            )
    return ModelNotFoundError(
        f"No model at {url}: the location is empty. Check the key and its spelling.",
        model_path=url,
    )


def _error_code(exc: BaseException) -> str:
    """Return the service's error code, such as ``InvalidAccessKeyId``, from
    ``exc`` or the exceptions it was raised from."""
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return ""
        response = getattr(current, "response", None)
        if isinstance(response, Mapping):
            code = (response.get("Error") or {}).get("Code")
            if code:
                return str(code)
        current = current.__cause__ or current.__context__
    return ""


def _class_names(exc: BaseException) -> set[str]:
    names: set[str] = set()
    current: BaseException | None = exc
    while current is not None and len(names) < 64:
        names.update(cls.__name__ for cls in type(current).__mro__)
        current = current.__cause__ or current.__context__
    return names


def _is_connection_error(exc: BaseException) -> bool:
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return False
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        current = current.__cause__ or current.__context__
    return False


def _connection_failure(exc: BaseException) -> BaseException | None:
    """Return the connection error in ``exc`` or its causes, or ``None``."""
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return None
        own_names = {cls.__name__ for cls in type(current).__mro__}
        if own_names & _UNREACHABLE or isinstance(
            current, (ConnectionError, TimeoutError)
        ):
            return current
        current = current.__cause__ or current.__context__
    return None
