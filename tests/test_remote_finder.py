"""The REMOTE finder against a real S3 server: layouts, the cache and concurrency."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import storage_models as sm
from s3_server import S3Server

import caikit_mm
import caikit_mm.config
from caikit_mm import ConfigError, ModelManager, ModelNotFoundError

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def downloads(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=sm.DOWNLOAD_LOGGER)
    return caplog


def put_model(
    server: S3Server, bucket: str, prefix: str, files: dict[str, bytes]
) -> str:
    for name, data in files.items():
        server.put(bucket, f"{prefix}/{name}", data)
    return f"s3://{bucket}/{prefix}"


def load(server: S3Server, cache: Path, url: str, **config: Any) -> Any:
    manager = sm.remote_manager(server.finder_config(cache, **config))
    return manager.load(url, finder="s3")


# Layouts ----------------------------------------------------------------------------


def test_folder_loads(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    files = sm.model_files("folder", extra=3, size=5000)
    url = put_model(s3_server, s3_bucket, "models/foo", files)
    model = load(s3_server, tmp_path, url)
    assert isinstance(model, sm.StoredModel)
    assert model.files == files
    assert Path(model.path).is_relative_to(tmp_path / "remote")


@pytest.mark.parametrize("suffix", ["", "/"])
def test_prefix_siblings_excluded(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, suffix: str
) -> None:
    files = sm.model_files("foo")
    url = put_model(s3_server, s3_bucket, "models/foo", files)
    put_model(s3_server, s3_bucket, "models/foo-v2", sm.model_files("foo-v2"))
    s3_server.put(s3_bucket, "models/foo-logs", b"log line\n")
    s3_server.put(s3_bucket, "models/foo.txt", b"notes\n")
    model = load(s3_server, tmp_path, url + suffix)
    assert model.files == files


def test_folder_markers_skipped(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    files = {**sm.model_files("markers"), "empty.txt": b""}
    url = put_model(s3_server, s3_bucket, "models/marked", files)
    s3_server.put(s3_bucket, "models/marked/", b"")
    s3_server.put(s3_bucket, "models/marked/data/", b"")
    s3_server.put(s3_bucket, "models/marked/extra/", b"")
    model = load(s3_server, tmp_path, url)
    assert model.files == files
    assert not (Path(model.path) / "extra").exists()


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_archive_object_loads(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, suffix: str
) -> None:
    files = sm.model_files("archive")
    data = sm.zip_bytes(files) if suffix == ".zip" else sm.tar_bytes(files, "m/", "gz")
    s3_server.put(s3_bucket, f"models/foo{suffix}", data)
    model = load(s3_server, tmp_path, f"s3://{s3_bucket}/models/foo{suffix}")
    assert model.files == files
    assert Path(model.path).parent == tmp_path / "archives"


def test_single_plain_object_rejected(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    s3_server.put(s3_bucket, "models/weights.bin", b"x")
    with pytest.raises(ModelNotFoundError, match="single object") as caught:
        load(s3_server, tmp_path, f"s3://{s3_bucket}/models/weights.bin")
    assert caught.value.finder == "s3"


def test_folder_without_config_rejected(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    url = put_model(s3_server, s3_bucket, "models/bare", {"weights.bin": b"x"})
    with pytest.raises(ModelNotFoundError, match="config.yml is missing"):
        load(s3_server, tmp_path, url)


def test_empty_prefix_not_found(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    put_model(s3_server, s3_bucket, "models/foo-v2", sm.model_files())
    url = f"s3://{s3_bucket}/models/foo"
    with pytest.raises(ModelNotFoundError) as caught:
        load(s3_server, tmp_path, url)
    assert url in str(caught.value)
    assert "location is empty" in str(caught.value)


def test_missing_bucket_named(s3_server: S3Server, tmp_path: Path) -> None:
    url = "s3://caikit-mm-no-such-bucket/models/foo"
    with pytest.raises(ModelNotFoundError) as caught:
        load(s3_server, tmp_path, url)
    assert "Bucket 'caikit-mm-no-such-bucket'" in str(caught.value)
    assert url in str(caught.value)


def test_base_url_for_names(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    files = sm.model_files("base")
    put_model(s3_server, s3_bucket, "models/foo", files)
    model = load(s3_server, tmp_path, "foo", base_url=f"s3://{s3_bucket}/models/")
    assert model.files == files


def test_name_without_base_url_rejected(s3_server: S3Server, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="takes a URL"):
        load(s3_server, tmp_path, "models/foo")


def test_memory_protocol_loads(tmp_path: Path) -> None:
    import fsspec

    files = sm.model_files("memory")
    memory = fsspec.filesystem("memory")
    for name, data in files.items():
        memory.pipe(f"/caikit-mm-tests/{tmp_path.name}/{name}", data)
    manager = sm.remote_manager({"cache_dir": str(tmp_path)})
    model = manager.load(f"memory://caikit-mm-tests/{tmp_path.name}", finder="s3")
    assert model.files == files


# The cache --------------------------------------------------------------------------


def test_unchanged_model_not_downloaded(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, downloads: Any
) -> None:
    url = put_model(s3_server, s3_bucket, "models/foo", sm.model_files("same"))
    first = load(s3_server, tmp_path, url)
    second = load(s3_server, tmp_path, url)
    assert sm.count_downloads(downloads.records) == 1
    assert second.path == first.path
    assert second.files == first.files


def test_changed_object_downloaded_again(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, downloads: Any
) -> None:
    files = sm.model_files("v1")
    url = put_model(s3_server, s3_bucket, "models/foo", files)
    first = load(s3_server, tmp_path, url)
    s3_server.put(s3_bucket, "models/foo/data/part-0.bin", b"changed")
    second = load(s3_server, tmp_path, url)
    assert sm.count_downloads(downloads.records) == 2
    assert second.files == {**files, "data/part-0.bin": b"changed"}
    assert second.path != first.path
    assert not Path(first.path).exists()


def test_manager_load_default_s3_finder(
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = sm.model_files("default")
    url = put_model(s3_server, s3_bucket, "models/foo", files)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("MODEL_MANAGEMENT_FINDERS_S3_CONFIG_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(caikit_mm.config, "_global_config", None)
    model = ModelManager().load(url, finder="s3")
    assert model.files == files
    assert Path(model.path).is_relative_to(tmp_path)


def test_env_overrides_endpoint_key(
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = put_model(s3_server, s3_bucket, "models/foo", sm.model_files("env"))
    monkeypatch.setenv(
        "MODEL_MANAGEMENT_FINDERS_S3_CONFIG_ENDPOINT_URL", s3_server.endpoint_url
    )
    monkeypatch.setenv("MODEL_MANAGEMENT_FINDERS_S3_CONFIG_MAX_CONCURRENCY", "2")
    manager = ModelManager({"model_management": {"finders": {"s3": {"config": {}}}}})
    finder = manager.get_finder("s3")
    assert finder.settings.endpoint_url == s3_server.endpoint_url  # type: ignore[attr-defined]
    assert finder.settings.max_concurrency == 2  # type: ignore[attr-defined]
    monkeypatch.setenv("MODEL_MANAGEMENT_FINDERS_S3_CONFIG_CACHE_DIR", str(tmp_path))
    manager = ModelManager({"model_management": {"finders": {"s3": {"config": {}}}}})
    assert manager.load(url, finder="s3").path.startswith(str(tmp_path))


def test_offline_loads_from_cache(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    from s3_server import free_port

    files = sm.model_files("offline")
    url = put_model(s3_server, s3_bucket, "models/foo", files)
    online = load(s3_server, tmp_path, url)
    closed = f"http://127.0.0.1:{free_port()}"
    config = {"cache_dir": str(tmp_path), "offline": True, "endpoint_url": closed}
    model = sm.remote_manager(config).load(url, finder="s3")
    assert model.files == files
    assert model.path == online.path


def test_offline_uncached_not_found(s3_server: S3Server, tmp_path: Path) -> None:
    config = {"cache_dir": str(tmp_path), "offline": True}
    with pytest.raises(ModelNotFoundError, match="offline") as caught:
        sm.remote_manager(config).load("s3://bucket/models/foo", finder="s3")
    assert "s3://bucket/models/foo" in str(caught.value)


def test_offline_archive_from_cache(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    files = sm.model_files("offline-archive")
    s3_server.put(s3_bucket, "models/foo.zip", sm.zip_bytes(files))
    url = f"s3://{s3_bucket}/models/foo.zip"
    load(s3_server, tmp_path, url)
    config = {"cache_dir": str(tmp_path), "offline": True}
    assert sm.remote_manager(config).load(url, finder="s3").files == files


def test_two_threads_download_once(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, downloads: Any
) -> None:
    files = sm.model_files("threads", extra=10, size=100_000)
    url = put_model(s3_server, s3_bucket, "models/foo", files)
    managers = [sm.remote_manager(s3_server.finder_config(tmp_path)) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def run(index: int) -> None:
        barrier.wait()
        results[index] = managers[index].load(url, finder="s3")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results[0] is not None and results[1] is not None
    assert results[0].files == files
    assert results[1].files == files
    assert sm.count_downloads(downloads.records) == 1


CHILD_LOAD = """
import logging, os, sys, time
sys.path.insert(0, sys.argv[1])
import storage_models as sm
records = []
handler = logging.Handler()
handler.emit = records.append
logging.getLogger(sm.DOWNLOAD_LOGGER).addHandler(handler)
logging.getLogger(sm.DOWNLOAD_LOGGER).setLevel(logging.INFO)
manager = sm.remote_manager(
    {"endpoint_url": sys.argv[2], "cache_dir": sys.argv[3], "progress": "none"}
)
while not os.path.exists(sys.argv[5]):
    time.sleep(0.01)
model = manager.load(sys.argv[4], finder="s3")
print(sm.count_downloads(records), len(model.files), model.path)
"""


def test_two_processes_download_once(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    files = sm.model_files("processes", extra=20, size=200_000)
    url = put_model(s3_server, s3_bucket, "models/foo", files)
    go = tmp_path / "go"
    args = [str(TESTS), s3_server.endpoint_url, str(tmp_path / "cache"), url, str(go)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD_LOAD, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    go.touch()
    outputs = [child.communicate(timeout=120) for child in children]
    for child, (_, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stderr
    reports = [out.split() for out, _ in outputs]
    assert sorted(int(report[0]) for report in reports) == [0, 1]
    assert [int(report[1]) for report in reports] == [len(files), len(files)]
    assert reports[0][2] == reports[1][2]


# Progress and configuration -----------------------------------------------------------


def test_progress_log_lines(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, downloads: Any
) -> None:
    files = sm.model_files("progress", extra=4, size=50_000)
    url = put_model(s3_server, s3_bucket, "models/foo", files)
    load(s3_server, tmp_path, url, progress_interval="0s", max_concurrency=1)
    total = sum(len(data) for data in files.values())
    lines = [
        r.getMessage()
        for r in downloads.records
        if r.getMessage().startswith(f"Downloading {url}:")
    ]
    assert lines
    assert all(line.endswith(f"of {total} B") or "KiB" in line for line in lines)
    assert any("KiB" in line for line in lines)


def test_progress_bar_on_request(
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = put_model(s3_server, s3_bucket, "models/foo", sm.model_files("bar"))
    load(s3_server, tmp_path, url, progress="bar")
    assert "100%" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_concurrency", 0),
        ("max_concurrency", "eight"),
        ("progress", "fancy"),
        ("progress_interval", "soon"),
        ("lock_timeout", -3),
        ("anonymous", "yes"),
        ("offline", 1),
        ("storage_options", ["a"]),
        ("endpoint_url", 5),
        ("max_archive_files", -1),
    ],
)
def test_remote_config_validated(key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        sm.remote_manager({key: value})
    assert f"finders.s3.config.{key}" in str(caught.value)


def test_remote_unknown_key_rejected() -> None:
    with pytest.raises(ConfigError) as caught:
        sm.remote_manager({"endpoint_ulr": "http://127.0.0.1:9000"})
    message = str(caught.value)
    assert "finders.s3.config.endpoint_ulr" in message
    assert "Did you mean 'endpoint_url'?" in message


@pytest.mark.parametrize("package", ["fsspec", "filelock"])
def test_missing_extra_named(s3_server: S3Server, s3_bucket: str, package: str) -> None:
    url = put_model(s3_server, s3_bucket, "models/foo", sm.model_files("extra"))
    # A None entry in sys.modules makes the import fail as if not installed.
    code = (
        "import sys, tempfile\n"
        f"sys.modules[{package!r}] = None\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import storage_models as sm\n"
        "config = {'endpoint_url': sys.argv[2], 'cache_dir': tempfile.mkdtemp()}\n"
        "try:\n"
        "    sm.remote_manager(config).load(sys.argv[3], finder='s3')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(TESTS), s3_server.endpoint_url, url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'caikit_mm[s3]'" in result.stdout
