"""A read-only or full cache folder, on real file systems.

Each case runs in a child process started with ``unshare``: a new user
namespace makes a chmod 555 folder read-only even for root, and a new mount
namespace lets the child mount a small tmpfs as a full disk without changing
the host's mounts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import storage_models as sm
from s3_server import S3Server

TESTS_DIR = Path(__file__).parent

# Loads one model in the child and prints the error's class and message.
CHILD_SCRIPT = """
import json, sys
sys.path.insert(0, {tests_dir!r})
import storage_models as sm
from caikit_mm import ModelManager
from caikit_mm.storage import download_folder

request = json.loads({request!r})
try:
    if request["kind"] == "download_folder":
        download_folder(request["url"], request["target"], config=request["config"])
    elif request["kind"] == "archive":
        finders = {{"default": {{"config": request["config"]}}}}
        ModelManager({{"model_management": {{"finders": finders}}}}).load(
            request["url"]
        )
    else:
        sm.remote_manager(request["config"]).load(request["url"], finder="s3")
    print(json.dumps({{"type": "none", "message": ""}}))
except Exception as exc:
    print(json.dumps({{"type": type(exc).__name__, "message": str(exc)}}))
"""


def run_child(
    request: dict[str, Any], *, tmpfs: Path | None = None, options: str = ""
) -> dict[str, str]:
    """Run one load in a child process and return its error's type and message.

    With ``tmpfs``, the child mounts a tmpfs with ``options`` there first.
    """
    script = CHILD_SCRIPT.format(tests_dir=str(TESTS_DIR), request=json.dumps(request))
    python = [sys.executable, "-c", script]
    if tmpfs is None:
        command = ["unshare", "--user", *python]
    else:
        mount = f"mount -t tmpfs -o {options} tmpfs {tmpfs}"
        inner = f'{mount} && exec "$@"'
        command = ["unshare", "--user", "--map-root-user", "--mount"]
        command += ["sh", "-c", inner, "sh", *python]
    done = subprocess.run(
        command, capture_output=True, text=True, env=dict(os.environ), check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def temp_entries(root: Path) -> list[Path]:
    return [path for path in root.rglob(".tmp-*")]


def store_model(
    server: S3Server, bucket: str, files: dict[str, bytes], prefix: str
) -> str:
    for name, data in files.items():
        server.put(bucket, f"{prefix}/{name}", data)
    return f"s3://{bucket}/{prefix}"


def test_remote_read_only_cache(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    url = store_model(s3_server, s3_bucket, sm.model_files("ro"), "models/ro")
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    request = {"kind": "load", "url": url, "config": s3_server.finder_config(cache)}
    result = run_child(request)
    assert result["type"] == "LocalStorageError"
    assert str(cache) in result["message"]
    assert "permission denied" in result["message"]
    assert "cache_dir" in result["message"]
    assert list(cache.iterdir()) == []


def test_archive_read_only_cache(tmp_path: Path) -> None:
    archive = tmp_path / "model.zip"
    archive.write_bytes(sm.zip_bytes(sm.model_files("archive")))
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    request = {
        "kind": "archive",
        "url": str(archive),
        "config": {"cache_dir": str(cache)},
    }
    result = run_child(request)
    assert result["type"] == "LocalStorageError"
    assert str(cache) in result["message"]
    assert "permission denied" in result["message"]
    assert list(cache.iterdir()) == []


def test_remote_download_needs_space(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    files = sm.model_files("big", extra=1, size=512 * 1024)
    url = store_model(s3_server, s3_bucket, files, "models/big")
    cache = tmp_path / "cache"
    cache.mkdir()
    request = {"kind": "load", "url": url, "config": s3_server.finder_config(cache)}
    result = run_child(request, tmpfs=cache, options="size=128k")
    assert result["type"] == "LocalStorageError"
    assert str(cache) in result["message"]
    assert "bytes free" in result["message"]
    assert "cache_dir" in result["message"]


def test_remote_download_disk_fills(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    # Each file takes an inode, so the listed sizes fit but the writes fail.
    files = sm.model_files("many", extra=30, size=10)
    url = store_model(s3_server, s3_bucket, files, "models/many")
    cache = tmp_path / "cache"
    cache.mkdir()
    request = {"kind": "load", "url": url, "config": s3_server.finder_config(cache)}
    result = run_child(request, tmpfs=cache, options="size=1m,nr_inodes=16")
    assert result["type"] == "LocalStorageError"
    assert str(cache) in result["message"]
    assert "is full" in result["message"]
    assert "cache_dir" in result["message"]


def test_download_folder_needs_space(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    files = sm.model_files("copy", extra=1, size=512 * 1024)
    url = store_model(s3_server, s3_bucket, files, "models/copy")
    disk = tmp_path / "disk"
    disk.mkdir()
    request = {
        "kind": "download_folder",
        "url": url,
        "target": str(disk / "out"),
        "config": {"endpoint_url": s3_server.endpoint_url},
    }
    result = run_child(request, tmpfs=disk, options="size=128k")
    assert result["type"] == "LocalStorageError"
    assert str(disk) in result["message"]
    assert "bytes free" in result["message"]
