"""A real S3-compatible server for tests: moto in server mode on 127.0.0.1.

``conftest.py`` imports the fixtures from here, so every test module can ask for
``s3_server`` (one server per session) or ``s3_bucket`` (a new, empty bucket).
moto itself is imported when the first test requests the server.

The autouse ``fake_aws_env`` fixture gives every test fake credentials, turns
off the EC2 metadata lookup and points the AWS config files at missing paths,
so that no test reads a developer's real AWS settings or contacts any host but
127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY_ID = "AKIATESTCAIKITMM0001"
# A fake secret with a recognizable shape, so tests can search logs for it.
SECRET_ACCESS_KEY = "caikit-mm-test-secret-0f9e8d7c6b5a"
REGION = "us-east-1"

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/caikit-mm-tests/credentials",
    "AWS_CONFIG_FILE": "/nonexistent/caikit-mm-tests/config",
}
UNSET_AWS_ENV = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@dataclass
class S3Server:
    """A running moto server.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>``.
    """

    endpoint_url: str

    def client(self) -> Any:
        """Return a boto3 S3 client for this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            region_name=REGION,
        )

    def new_bucket(self) -> str:
        """Create a bucket with a unique name and return the name."""
        name = f"caikit-mm-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, data: bytes) -> None:
        """Store ``data`` as ``bucket/key``."""
        self.client().put_object(Bucket=bucket, Key=key, Body=data)

    def put_folder(self, bucket: str, prefix: str, folder: Path) -> None:
        """Store every file under ``folder`` below ``prefix``."""
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                key = f"{prefix}/{path.relative_to(folder).as_posix()}"
                self.put(bucket, key, path.read_bytes())

    def finder_config(self, cache_dir: Path, **extra: Any) -> dict[str, Any]:
        """Return a REMOTE finder config that reads this server."""
        return {
            "endpoint_url": self.endpoint_url,
            "cache_dir": str(cache_dir),
            "progress": "log",
            **extra,
        }


def apply_fake_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set fake AWS credentials and remove real AWS settings from the env."""
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in UNSET_AWS_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def fake_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give every test fake AWS credentials and no real AWS settings."""
    apply_fake_aws_env(monkeypatch)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 and a free port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new, empty bucket on the session's server."""
    return s3_server.new_bucket()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto_process(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """Start moto in its own process, with ``env`` added to the environment,
    and return the process and its endpoint URL once it accepts connections."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"moto server on port {port} did not start")
