"""Connecting to a Ray cluster: lazy import, auth token, reachability and locality.

Ray allows one cluster connection per process, so every RAY trainer and
initializer of a process shares the connection that the first one opens (or the
one the application opened itself with ``ray.init``).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ._settings import ClusterSettings

log = logging.getLogger(__name__)

INSTALL_HINT: Final = "pip install 'caikit_mm[ray]'"

# Ray reads the token of a cluster with token authentication from these.
RAY_TOKEN_ENV: Final = "RAY_AUTH_TOKEN"
RAY_AUTH_MODE_ENV: Final = "RAY_AUTH_MODE"

# File system types whose files other machines can see, from /proc/self/mountinfo.
NETWORK_FILESYSTEMS: Final = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "9p",
        "virtiofs",
        "afs",
        "ocfs2",
        "gfs2",
        "efs",
    }
)

# Seconds for which the result of cluster_is_local is reused.
LOCALITY_TTL_SECONDS: Final = 30.0

ErrorFactory = Callable[[str], Exception]

_connect_lock = threading.Lock()
_connected_address: str | None = None
_locality: tuple[float, bool] | None = None


def import_ray() -> ModuleType:
    """Import Ray, or raise an ``ImportError`` that names the install command."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            f"The RAY trainer and initializer need Ray, which cannot be imported "
            f"({exc}). Install it with: {INSTALL_HINT}"
        ) from exc
    return ray


def import_job_client() -> Any:
    """Import ``JobSubmissionClient``, which needs the ``ray[default]`` packages."""
    import_ray()
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as exc:
        raise ImportError(
            f"Ray job submission needs the ray[default] packages ({exc}). Install "
            f"them with: {INSTALL_HINT}"
        ) from exc
    return JobSubmissionClient


# Auth token -------------------------------------------------------------------


def read_auth_token(settings: ClusterSettings) -> str | None:
    """Return the cluster's auth token from the configured source, if any.

    The environment variable named by ``auth_token_env`` wins when it is set and
    not empty; otherwise ``auth_token_file`` is read when configured.

    Raises:
        FileNotFoundError: ``auth_token_file`` is configured but missing.
    """
    if settings.auth_token_env:
        token = os.environ.get(settings.auth_token_env, "").strip()
        if token:
            return token
    if settings.auth_token_file:
        path = os.path.expanduser(settings.auth_token_file)
        try:
            with open(path, encoding="utf-8") as stream:
                token = stream.read().strip()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"auth_token_file {path!r} of {settings.owner} does not exist. Write "
                "the cluster's token there, or set auth_token_file to ''."
            ) from None
        if not token:
            raise ValueError(
                f"auth_token_file {path!r} of {settings.owner} is empty. Write the "
                "cluster's token there, or set auth_token_file to ''."
            )
        return token
    return None


def auth_headers(settings: ClusterSettings) -> dict[str, str]:
    """Return the HTTP headers that authenticate job submission requests."""
    token = read_auth_token(settings)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _prepare_core_auth(settings: ClusterSettings) -> None:
    token = read_auth_token(settings)
    if token is None:
        return
    # Ray's core client reads the token and the mode from the environment of the
    # connecting process; an explicit RAY_AUTH_MODE set by the user is kept.
    os.environ.setdefault(RAY_AUTH_MODE_ENV, "token")
    os.environ[RAY_TOKEN_ENV] = token
    try:
        from ray._raylet import (  # type: ignore[attr-defined]
            AuthenticationTokenLoader,
            Config,
        )

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):
        # NOTE: private Ray API (2.5x); without it, a Ray release that cached
        # the auth mode before this point ignores the token set above.
        log.debug("Could not refresh Ray's cached auth settings", exc_info=True)


# Connection -------------------------------------------------------------------


def connect(settings: ClusterSettings, error: ErrorFactory) -> ModuleType:
    """Connect this process to the configured cluster once and return ``ray``.

    An existing connection is reused when the configured address is empty or
    ``auto``, or names the same cluster.

    Args:
        settings: The owner's cluster settings.
        error: Builds the exception to raise from a message, so that a trainer
            raises a ``TrainingError`` and an initializer a ``RemoteModelError``.

    Raises:
        Exception: From ``error``, when the cluster cannot be reached or this
            process is connected to another cluster. The message names the
            address tried.
    """
    global _connected_address
    ray = import_ray()
    with _connect_lock:
        if ray.is_initialized():
            _check_same_cluster(ray, settings, error)
            return ray
        target = effective_address(settings.address)
        if target:
            probe(target, settings.connect_timeout, settings.owner, error)
        _prepare_core_auth(settings)
        started = time.perf_counter()
        try:
            ray.init(address=settings.address or None, **settings.init_options)
        except Exception as exc:
            raise error(
                f"Could not connect {settings.owner} to the Ray cluster at "
                f"{describe_address(settings.address)}: {type(exc).__name__}: {exc}. "
                "Check that the cluster is running and that its address is right."
            ) from exc
        _connected_address = settings.address
    log.info(
        "Connected to Ray %s at %s in %.1f s",
        ray.__version__,
        describe_address(settings.address),
        time.perf_counter() - started,
    )
    return ray


def effective_address(address: str) -> str:
    """Return the address Ray will use for ``address``, after ``RAY_ADDRESS``."""
    if address in ("", "auto"):
        return os.environ.get("RAY_ADDRESS", "")
    return "" if address == "local" else address


def describe_address(address: str) -> str:
    """Describe ``address`` for messages, including what an empty one means."""
    target = effective_address(address)
    if address in ("", "auto") and target:
        return f"{target!r} (from RAY_ADDRESS)"
    if address == "auto":
        return "'auto' (a Ray instance already running on this machine)"
    if not target:
        return "a new local Ray instance"
    return repr(address)


def probe(address: str, timeout: float, owner: str, error: ErrorFactory) -> None:
    """Open and close a TCP connection to ``address``, so a dead cluster fails fast.

    ``ray.init`` on an unreachable address can wait for minutes before it gives
    up; this check fails within ``timeout`` seconds and names the address.
    """
    host, port = split_host_port(address)
    if host is None or port is None:
        return
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise error(
            f"Cannot reach the Ray cluster at {address!r} for {owner} (TCP "
            f"connection to {host}:{port} failed: {exc}). Start the cluster, or fix "
            "the address in the configuration."
        ) from exc


def split_host_port(address: str) -> tuple[str | None, int | None]:
    """Split ``host:port``, ``ray://host:port`` or ``http://host:port``."""
    text = address if "://" in address else f"tcp://{address}"
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None and parts.scheme == "http":
        port = 80
    elif port is None and parts.scheme == "https":
        port = 443
    return parts.hostname, port


def _check_same_cluster(
    ray: ModuleType, settings: ClusterSettings, error: ErrorFactory
) -> None:
    address = settings.address
    if address in ("", "auto") or address == _connected_address:
        return
    current = _current_gcs_address(ray)
    if current is None:
        log.debug(
            "Reusing the existing Ray client connection for %s (%s)",
            settings.owner,
            address,
        )
        return
    if not address.startswith("ray://") and same_endpoint(current, address):
        return
    raise error(
        f"This process is already connected to the Ray cluster at {current!r}, but "
        f"{settings.owner} is configured for {address!r}. A process connects to one "
        "Ray cluster at a time: use the same address in every RAY trainer and "
        "initializer, or leave address empty to use the existing connection."
    )


def _current_gcs_address(ray: ModuleType) -> str | None:
    if ray.util.client.ray.is_connected():
        return None
    try:
        return str(ray.get_runtime_context().gcs_address)
    except Exception:  # noqa: BLE001 - only used to compare addresses
        return None


def same_endpoint(first: str, second: str) -> bool:
    """Tell whether two ``host:port`` addresses name one endpoint of this machine or
    the same remote host."""
    host1, port1 = split_host_port(first)
    host2, port2 = split_host_port(second)
    if port1 != port2 or host1 is None or host2 is None:
        return False
    if is_local_host(host1) and is_local_host(host2):
        return True
    return _resolve(host1) == _resolve(host2)


# Locality ---------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _local_addresses() -> frozenset[str]:
    names = {"localhost", socket.gethostname(), socket.getfqdn()}
    addresses = set(names)
    for name in names:
        try:
            for info in socket.getaddrinfo(name, None):
                addresses.add(str(info[4][0]))
        except OSError:
            continue
    return frozenset(addresses)


def _resolve(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


def is_local_host(host: str) -> bool:
    """Tell whether ``host`` is this machine: loopback, its name or an address."""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    local = _local_addresses()
    return host in local or _resolve(host) in local


def cluster_is_local(ray: ModuleType) -> bool:
    """Tell whether every live node of the connected cluster runs on this machine.

    The result is reused for 30 seconds, so that submitting many trainings does
    not query the node table each time.
    """
    global _locality
    now = time.monotonic()
    if _locality is not None and now - _locality[0] < LOCALITY_TTL_SECONDS:
        return _locality[1]
    if ray.util.client.ray.is_connected():
        host, _ = split_host_port(_connected_address or "")
        local = host is not None and is_local_host(host)
    else:
        here = ray.util.get_node_ip_address()
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        local = all(
            node["NodeManagerAddress"] == here
            or is_local_host(node["NodeManagerAddress"])
            for node in nodes
        )
    _locality = (now, local)
    return local


def check_reachable(
    path: str,
    *,
    cluster_local: bool,
    shared_paths: Iterable[str],
    what: str,
    cluster: str,
    owner: str,
) -> None:
    """Check that the cluster's workers can read and write the local ``path``.

    A path is reachable when the cluster runs on this machine only, when it lies
    under one of ``shared_paths``, or when it is on a network file system.

    Raises:
        ValueError: None of these is true. The message names the path and the fix.
    """
    if cluster_local:
        return
    real = os.path.realpath(path)
    for prefix in shared_paths:
        root = os.path.realpath(os.path.expanduser(prefix))
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return
    fs_type = filesystem_type(real)
    if fs_type in NETWORK_FILESYSTEMS or fs_type.startswith("fuse."):
        return
    raise ValueError(
        f"{what} {path!r} is on this machine's local disk ({fs_type or 'unknown'} "
        f"file system), but the Ray cluster at {cluster} has nodes on other "
        "machines, which cannot reach it. Use a path on a file system that every "
        f"node mounts and list its folder under shared_paths of {owner}, or use an "
        "object-store URL."
    )


def filesystem_type(path: str) -> str:
    """Return the type of the file system holding ``path`` (or its nearest
    existing parent), from ``/proc/self/mountinfo``; ``""`` when unknown."""
    existing = path
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as stream:
            lines = stream.read().splitlines()
    except OSError:
        return ""
    best, best_type = "", ""
    for line in lines:
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not rest:
            continue
        mount_point = _unescape_mount(parts[4])
        if _is_under(existing, mount_point) and len(mount_point) > len(best):
            best, best_type = mount_point, rest.split()[0]
    return best_type


def _unescape_mount(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    escapes = (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\"))
    for code, char in escapes:
        text = text.replace(code, char)
    return text


def _is_under(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root.rstrip("/") + "/")


# Errors -----------------------------------------------------------------------


def remote_cause(error: BaseException) -> BaseException | None:
    """Return the exception a Ray task or actor method raised, unwrapped.

    Ray raises ``RayTaskError`` around the original exception (and again around
    that when a task fails inside another task); ``None`` when ``error`` is not
    such a wrapper or the original could not be deserialized.
    """
    from ray.exceptions import RayTaskError

    cause: BaseException = error
    while isinstance(cause, RayTaskError):
        inner = getattr(cause, "cause", None)
        if not isinstance(inner, BaseException) or inner is cause:
            break
        cause = inner
    if cause is error or isinstance(cause, RayTaskError):
        return None
    return cause
