"""REMOTE finder failures: credentials, permissions, the network, killed downloads.

Credential checks run against a second moto server in its own process, with
authentication enforced after the setup requests (moto's
``INITIAL_NO_AUTH_ACTION_COUNT``), so the session's shared server stays open.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import storage_models as sm
from s3_server import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    S3Server,
    free_port,
    start_moto_process,
)

from caikit_mm import ModelNotFoundError, RemoteStorageError

TESTS = Path(__file__).resolve().parent
AUTH_BUCKET = "caikit-mm-auth"
# Requests moto serves before it enforces authentication: create the bucket,
# store config.yml, create two users and their two keys, attach an allow
# policy to one and a deny policy to the other.
SETUP_REQUESTS = 8


@dataclass
class AuthServer:
    endpoint_url: str
    reader: tuple[str, str]
    denied: tuple[str, str]


@pytest.fixture(scope="module")
def auth_server() -> Iterator[AuthServer]:
    import boto3

    process, endpoint = start_moto_process(
        {"INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_REQUESTS)}
    )
    try:
        options = {
            "endpoint_url": endpoint,
            "region_name": REGION,
            "aws_access_key_id": ACCESS_KEY_ID,
            "aws_secret_access_key": SECRET_ACCESS_KEY,
        }
        s3 = boto3.client("s3", **options)
        iam = boto3.client("iam", **options)
        s3.create_bucket(Bucket=AUTH_BUCKET)
        s3.put_object(Bucket=AUTH_BUCKET, Key="m/config.yml", Body=sm.config_bytes())
        keys = []
        for user in ("reader", "denied"):
            iam.create_user(UserName=user)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            keys.append((key["AccessKeyId"], key["SecretAccessKey"]))
        for user, effect in (("reader", "Allow"), ("denied", "Deny")):
            policy = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": effect, "Action": "s3:*", "Resource": "*"}],
            }
            iam.put_user_policy(
                UserName=user, PolicyName=effect, PolicyDocument=json.dumps(policy)
            )
        yield AuthServer(endpoint, keys[0], keys[1])
    finally:
        process.kill()
        process.wait()


def use_keys(monkeypatch: pytest.MonkeyPatch, key_id: str, secret: str) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)


def load_failure(endpoint: str, cache: Path, url: str, **config: Any) -> BaseException:
    options = {"config_kwargs": {"retries": {"max_attempts": 1}}}
    manager = sm.remote_manager(
        {
            "endpoint_url": endpoint,
            "cache_dir": str(cache),
            "storage_options": options,
            **config,
        }
    )
    with pytest.raises(Exception) as caught:
        manager.load(url, finder="s3")
    return caught.value


def all_text(error: BaseException, records: list[logging.LogRecord]) -> str:
    """Return the error with its traceback and every log line as a handler
    would write them."""
    formatter = logging.Formatter("%(name)s %(message)s")
    parts = ["".join(traceback.format_exception(error)), repr(error)]
    parts.extend(formatter.format(record) for record in records)
    return "\n".join(parts)


def test_valid_keys_read(
    auth_server: AuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_keys(monkeypatch, *auth_server.reader)
    manager = sm.remote_manager(
        {"endpoint_url": auth_server.endpoint_url, "cache_dir": str(tmp_path)}
    )
    model = manager.load(f"s3://{AUTH_BUCKET}/m", finder="s3")
    assert model.files == {"config.yml": sm.config_bytes()}


def test_wrong_credentials_rejected(
    auth_server: AuthServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    use_keys(monkeypatch, "AKIACAIKITMMUNKNOWN1", SECRET_ACCESS_KEY)
    url = f"s3://{AUTH_BUCKET}/m"
    error = load_failure(auth_server.endpoint_url, tmp_path, url)
    assert isinstance(error, RemoteStorageError)
    assert "Access denied" in str(error)
    assert "InvalidAccessKeyId" in str(error)
    assert url in str(error)
    assert SECRET_ACCESS_KEY not in all_text(error, caplog.records)


def test_access_denied_named(
    auth_server: AuthServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key_id, secret = auth_server.denied
    use_keys(monkeypatch, key_id, secret)
    url = f"s3://{AUTH_BUCKET}/m"
    error = load_failure(auth_server.endpoint_url, tmp_path, url)
    assert isinstance(error, RemoteStorageError)
    assert "Access denied" in str(error)
    assert "s3:ListBucket" in str(error)
    assert secret not in all_text(error, caplog.records)


def test_secret_in_config_never_shown(
    auth_server: AuthServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "config-secret-value-7a6b5c4d3e2f"
    token = "config-session-token-1a2b3c4d5e6f"
    url = f"s3://{AUTH_BUCKET}/m"
    options = {
        "key": "AKIACAIKITMMUNKNOWN2",
        "secret": secret,
        "token": token,
        "config_kwargs": {"retries": {"max_attempts": 1}},
    }
    manager = sm.remote_manager(
        {
            "endpoint_url": auth_server.endpoint_url,
            "cache_dir": str(tmp_path),
            "storage_options": options,
        }
    )
    with pytest.raises(RemoteStorageError) as caught:
        manager.load(url, finder="s3")
    text = all_text(caught.value, caplog.records)
    assert secret not in text
    assert token not in text


def test_missing_credentials_named(
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    url = "s3://caikit-mm-any-bucket/models/foo"
    error = load_failure(s3_server.endpoint_url, tmp_path, url)
    assert isinstance(error, RemoteStorageError)
    assert "No credentials" in str(error)
    assert "AWS_ACCESS_KEY_ID" in str(error)
    assert url in str(error)


def test_unreachable_endpoint_named(
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = f"http://127.0.0.1:{free_port()}"
    url = "s3://caikit-mm-any-bucket/models/foo"
    error = load_failure(endpoint, tmp_path, url)
    assert isinstance(error, RemoteStorageError)
    assert "Cannot connect" in str(error)
    assert endpoint in str(error)
    assert url in str(error)
    assert SECRET_ACCESS_KEY not in all_text(error, caplog.records)


def test_unreachable_http_url_named(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/models/foo"
    manager = sm.remote_manager({"cache_dir": str(tmp_path / "cache")})
    with pytest.raises(RemoteStorageError) as caught:
        manager.load(url, finder="s3")
    message = str(caught.value)
    assert "Cannot connect" in message
    assert url in message
    assert "endpoint_url" in message


def test_unreachable_http_download_named(tmp_path: Path) -> None:
    from caikit_mm.storage import download_folder

    url = f"http://127.0.0.1:{free_port()}/models/foo"
    with pytest.raises(RemoteStorageError, match="Cannot connect") as caught:
        download_folder(url, tmp_path / "out")
    assert url in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_anonymous_access_denied_by_auth(
    auth_server: AuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = load_failure(
        auth_server.endpoint_url, tmp_path, f"s3://{AUTH_BUCKET}/m", anonymous=True
    )
    assert isinstance(error, (RemoteStorageError, ModelNotFoundError))
    assert f"s3://{AUTH_BUCKET}/m" in str(error)


# A download killed mid-way ------------------------------------------------------------


class StallingProxy:
    """A TCP proxy to the S3 server that stops forwarding responses after
    ``limit`` bytes, so a download hangs at a known point."""

    def __init__(self, target_port: int, limit: int) -> None:
        self.target_port = target_port
        self.limit = limit
        self.forwarded = 0
        self.stalled = threading.Event()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closing.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(
                target=self._pump, args=(client, upstream, False), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, True), daemon=True
            ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        try:
            while data := source.recv(65536):
                if counted and not self._allow(len(data)):
                    self._closing.wait()
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.close()
                except OSError:
                    pass

    def _allow(self, size: int) -> bool:
        with self._lock:
            if self.forwarded + size > self.limit:
                self.stalled.set()
                return False
            self.forwarded += size
            return True


CHILD_DOWNLOAD = """
import sys
sys.path.insert(0, sys.argv[1])
import storage_models as sm
manager = sm.remote_manager(
    {"endpoint_url": sys.argv[2], "cache_dir": sys.argv[3], "max_concurrency": 1,
     "progress": "none"}
)
manager.load(sys.argv[4], finder="s3")
print("finished")
"""


def test_killed_download_then_retried(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    files = sm.model_files("killed", extra=16, size=256 * 1024)
    for name, data in files.items():
        s3_server.put(s3_bucket, f"models/foo/{name}", data)
    url = f"s3://{s3_bucket}/models/foo"
    total = sum(len(data) for data in files.values())
    port = int(s3_server.endpoint_url.rsplit(":", 1)[1])
    proxy = StallingProxy(port, limit=total // 2)
    cache = tmp_path / "cache"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD_DOWNLOAD,
            str(TESTS),
            f"http://127.0.0.1:{proxy.port}",
            str(cache),
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proxy.stalled.wait(timeout=120)
        url_dirs = list((cache / "remote").iterdir())
        assert len(url_dirs) == 1
        partial = [p for p in url_dirs[0].iterdir() if p.name.startswith(".tmp-")]
        assert len(partial) == 1
        assert any(p.is_file() for p in partial[0].rglob("*"))
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate()
        proxy.close()
    assert child.returncode == -signal.SIGKILL
    assert not (url_dirs[0] / "current.json").exists()
    assert not [p for p in url_dirs[0].iterdir() if p.name.startswith("v-")]
    manager = sm.remote_manager(s3_server.finder_config(cache))
    model = manager.load(url, finder="s3")
    assert model.files == files
    assert not [p for p in url_dirs[0].iterdir() if p.name.startswith(".tmp-")]
