"""Measure storage: a remote download against s3fs's own recursive get, a second
load of an unchanged model, and loading a zip of a trivial model.

Run from the repository root with the ``s3`` and ``test`` extras installed:

    python benchmarks/bench_storage.py [--quick]

It starts a moto S3 server on 127.0.0.1, stores a model of 40 files of 5 MB
(200 MB in all), and prints one JSON object with medians. The REMOTE finder's
download and ``S3FileSystem.get(..., recursive=True)`` of the same prefix are
interleaved, each into a new folder. Timings use ``time.perf_counter``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

FILES = 40
FILE_BYTES = 5 * 1000 * 1000
BUCKET = "caikit-mm-bench"
PREFIX = "models/big"


class _Downloads(logging.Handler):
    """Counts finished downloads and the bytes the finder reported."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Downloaded"):
            self.count += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="the finder's max_concurrency (default: the packaged default)",
    )
    args = parser.parse_args()
    repeats = 3 if args.quick else 7

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench-secret",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    work = Path(tempfile.mkdtemp(prefix="caikit-mm-bench-storage-"))
    try:
        store_model(endpoint)
        results = {
            "machine": machine(),
            "model": {"files": FILES, "bytes": FILES * FILE_BYTES},
            **remote(endpoint, work, repeats, args.concurrency),
            **archive(work, repeats * 3),
        }
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


def store_model(endpoint: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/config.yml", Body=b"module_id: x\n")
    for index in range(FILES - 1):
        body = os.urandom(FILE_BYTES)
        client.put_object(
            Bucket=BUCKET, Key=f"{PREFIX}/shard-{index:02}.bin", Body=body
        )


def remote(
    endpoint: str, work: Path, repeats: int, concurrency: int | None
) -> dict[str, Any]:
    import s3fs

    from caikit_mm.storage.remote import RemoteModelFinder

    url = f"s3://{BUCKET}/{PREFIX}"
    counter = _Downloads()
    logging.getLogger("caikit_mm.storage._download").addHandler(counter)
    logging.getLogger("caikit_mm.storage._download").setLevel(logging.INFO)
    finder_times, get_times = [], []
    fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)
    cache = work / "cache"
    config: dict[str, Any] = {
        "endpoint_url": endpoint,
        "cache_dir": str(cache),
        "progress": "none",
    }
    if concurrency is not None:
        config["max_concurrency"] = concurrency
    # One finder and one S3FileSystem for every repetition, as in a server that
    # loads many models; the first repetition of each warms up its client.
    finder = RemoteModelFinder(config, "bench")
    for rep in range(repeats + 1):
        shutil.rmtree(cache, ignore_errors=True)
        start = time.perf_counter()
        finder.find_model(url)
        elapsed = time.perf_counter() - start
        if rep:
            finder_times.append(elapsed)
        target = work / f"get-{rep}"
        fs.invalidate_cache()
        start = time.perf_counter()
        fs.get(f"{BUCKET}/{PREFIX}/", str(target) + "/", recursive=True)
        elapsed = time.perf_counter() - start
        if rep:
            get_times.append(elapsed)
        check_copy(target)
        shutil.rmtree(target)
    downloads_before = counter.count
    second = []
    for _ in range(repeats * 5):
        start = time.perf_counter()
        finder.find_model(url)
        second.append(time.perf_counter() - start)
    finder_median = statistics.median(finder_times)
    get_median = statistics.median(get_times)
    return {
        "download_200MB_finder_s": round(finder_median, 3),
        "download_200MB_s3fs_get_s": round(get_median, 3),
        "finder_over_s3fs_get": round(finder_median / get_median, 3),
        "second_load_unchanged_ms": round(statistics.median(second) * 1000, 2),
        "second_load_downloads": counter.count - downloads_before,
    }


def check_copy(target: Path) -> None:
    copied = sum(1 for path in target.rglob("*") if path.is_file())
    if copied != FILES:
        raise RuntimeError(f"s3fs get copied {copied} files, expected {FILES}")


def archive(work: Path, repeats: int) -> dict[str, Any]:
    from caikit_mm.model_management.local_finder import LocalModelFinder

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as opened:
        opened.writestr("config.yml", "module_id: caikit-mm-bench-trivial\n")
    first, second = [], []
    for rep in range(repeats):
        path = work / f"trivial-{rep}.zip"
        path.write_bytes(buffer.getvalue())
        finder = LocalModelFinder(
            {"cache_dir": str(work / f"zip-cache-{rep}")}, "bench"
        )
        start = time.perf_counter()
        finder.find_model(path)
        first.append(time.perf_counter() - start)
        start = time.perf_counter()
        finder.find_model(path)
        second.append(time.perf_counter() - start)
    return {
        "zip_first_load_ms": round(statistics.median(first) * 1000, 3),
        "zip_second_load_ms": round(statistics.median(second) * 1000, 3),
    }


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "argv": sys.argv[1:],
    }


if __name__ == "__main__":
    main()
