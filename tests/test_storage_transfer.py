"""upload_folder and download_folder against a real S3 server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import storage_models as sm
from s3_server import S3Server

from caikit_mm import (
    ConfigError,
    ModelFormatError,
    ModelNotFoundError,
    RemoteStorageError,
)
from caikit_mm.storage import (
    delete_folder,
    download_folder,
    folder_exists,
    upload_folder,
)


def stored_keys(server: S3Server, bucket: str, prefix: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_upload_then_load(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    files = sm.model_files("upload", extra=3)
    folder = sm.write_folder(tmp_path / "model", files)
    url = f"s3://{s3_bucket}/models/foo"
    config = {"endpoint_url": s3_server.endpoint_url}
    assert upload_folder(folder, url, config=config) == len(files)
    assert stored_keys(s3_server, s3_bucket, "models/") == sorted(
        f"models/foo/{name}" for name in files
    )
    manager = sm.remote_manager(s3_server.finder_config(tmp_path / "cache"))
    assert manager.load(url, finder="s3").files == files


def test_upload_refuses_existing(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    config = {"endpoint_url": s3_server.endpoint_url}
    url = f"s3://{s3_bucket}/models/foo"
    old = sm.write_folder(
        tmp_path / "old", {**sm.model_files("old"), "stale.txt": b"x"}
    )
    upload_folder(old, url, config=config)
    new_files = sm.model_files("new")
    new = sm.write_folder(tmp_path / "new", new_files)
    with pytest.raises(RemoteStorageError, match="overwrite=True") as caught:
        upload_folder(new, url, config=config)
    assert url in str(caught.value)
    upload_folder(new, url, config=config, overwrite=True)
    assert stored_keys(s3_server, s3_bucket, "models/foo/") == sorted(
        f"models/foo/{name}" for name in new_files
    )


def test_upload_rejects_file(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        upload_folder(path, "s3://bucket/models/foo")


@pytest.mark.parametrize(
    "files", [{"data/part-0.bin": b"weights"}, {}], ids=["data-only", "empty"]
)
def test_upload_without_config_rejected(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, files: dict[str, bytes]
) -> None:
    folder = sm.write_folder(tmp_path / "model", files)
    folder.mkdir(exist_ok=True)
    config = {"endpoint_url": s3_server.endpoint_url}
    with pytest.raises(ModelFormatError) as caught:
        upload_folder(folder, f"s3://{s3_bucket}/models/foo", config=config)
    message = str(caught.value)
    assert str(folder) in message
    assert "config.yml" in message
    assert "config.json" in message
    assert stored_keys(s3_server, s3_bucket, "") == []


def test_upload_hugging_face_folder(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    files = {
        "config.json": b'{"model_type": "bert"}',
        "model.safetensors": b"weights",
        "tokenizer/vocab.txt": b"[PAD]\n[UNK]\n",
    }
    folder = sm.write_folder(tmp_path / "model", files)
    url = f"s3://{s3_bucket}/models/hf"
    config = {"endpoint_url": s3_server.endpoint_url}
    assert upload_folder(folder, url, config=config) == len(files)
    assert stored_keys(s3_server, s3_bucket, "") == sorted(
        f"models/hf/{name}" for name in files
    )
    copy = download_folder(url, tmp_path / "copy", config=config)
    for name, data in files.items():
        assert (copy / name).read_bytes() == data


@pytest.mark.parametrize("suffix", ["", "/"], ids=["bare", "slash"])
def test_upload_rejects_bucket_root(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, suffix: str
) -> None:
    s3_server.put(s3_bucket, "other/model/config.yml", b"keep")
    folder = sm.write_folder(tmp_path / "model", sm.model_files("root"))
    url = f"s3://{s3_bucket}{suffix}"
    config = {"endpoint_url": s3_server.endpoint_url}
    with pytest.raises(ValueError, match="whole bucket") as caught:
        upload_folder(folder, url, config=config, overwrite=True)
    assert s3_bucket in str(caught.value)
    assert "s3://bucket/models/" in str(caught.value)
    assert stored_keys(s3_server, s3_bucket, "") == ["other/model/config.yml"]


@pytest.mark.parametrize(
    ("call", "operation"),
    [
        ("upload_folder(model, 's3://bucket/models/foo')", "Uploading models to"),
        ("download_folder('s3://bucket/models/foo', out)", "Downloading models from"),
    ],
)
def test_missing_extra_names_operation(
    tmp_path: Path, call: str, operation: str
) -> None:
    model = sm.write_folder(tmp_path / "model", sm.model_files("extra"))
    # A None entry in sys.modules makes the import fail as if not installed.
    code = (
        "import sys\n"
        "sys.modules['fsspec'] = None\n"
        "from caikit_mm.storage import download_folder, upload_folder\n"
        "model, out = sys.argv[1], sys.argv[2]\n"
        "try:\n"
        f"    {call}\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(model), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"{operation} URLs needs fsspec" in result.stdout
    assert "pip install 'caikit_mm[s3]'" in result.stdout


def test_download_folder(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    files = sm.model_files("download")
    for name, data in files.items():
        s3_server.put(s3_bucket, f"models/foo/{name}", data)
    s3_server.put(s3_bucket, "models/foo-v2/config.yml", b"other")
    target = download_folder(
        f"s3://{s3_bucket}/models/foo",
        tmp_path / "out",
        config={"endpoint_url": s3_server.endpoint_url},
    )
    assert sm.StoredModel.load(str(target)).files == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_download_archive_extracts(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    files = sm.model_files("download-archive")
    s3_server.put(s3_bucket, "models/foo.tgz", sm.tar_bytes(files, "foo/", "gz"))
    target = download_folder(
        f"s3://{s3_bucket}/models/foo.tgz",
        tmp_path / "out",
        config={"endpoint_url": s3_server.endpoint_url},
    )
    assert sm.StoredModel.load(str(target)).files == files


def test_download_missing_not_found(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    with pytest.raises(ModelNotFoundError, match="location is empty"):
        download_folder(
            f"s3://{s3_bucket}/models/none",
            tmp_path / "out",
            config={"endpoint_url": s3_server.endpoint_url},
        )
    assert list(tmp_path.iterdir()) == []


def test_download_refuses_full_folder(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        download_folder("s3://bucket/models/foo", tmp_path / "out")


@pytest.fixture
def local_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send a call whose config is wrongly accepted to a closed local port, never
    to the default AWS endpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")


def call_with_config(function: str, config: object, tmp_path: Path) -> None:
    url = "s3://bucket/models/foo"
    if function == "upload_folder":
        folder = sm.write_folder(tmp_path / "model", sm.model_files("config"))
        upload_folder(folder, url, config=config)  # type: ignore[arg-type]
    elif function == "download_folder":
        download_folder(url, tmp_path / "out", config=config)  # type: ignore[arg-type]
    elif function == "folder_exists":
        folder_exists(url, config=config)  # type: ignore[arg-type]
    else:
        delete_folder(url, config=config)  # type: ignore[arg-type]


TRANSFER_FUNCTIONS = [
    "upload_folder",
    "download_folder",
    "folder_exists",
    "delete_folder",
]


@pytest.mark.parametrize("function", TRANSFER_FUNCTIONS)
def test_misspelled_config_key_rejected(
    function: str, tmp_path: Path, local_endpoint: None
) -> None:
    with pytest.raises(ConfigError) as caught:
        call_with_config(function, {"endpoint": "http://127.0.0.1:1"}, tmp_path)
    message = str(caught.value)
    assert "'endpoint'" in message
    assert "Did you mean 'endpoint_url'?" in message


@pytest.mark.parametrize("function", TRANSFER_FUNCTIONS)
def test_config_not_mapping_rejected(
    function: str, tmp_path: Path, local_endpoint: None
) -> None:
    with pytest.raises(TypeError, match="must be a mapping") as caught:
        call_with_config(function, "abc", tmp_path)
    assert "'abc'" in str(caught.value)


def test_invalid_config_value_rejected(tmp_path: Path, local_endpoint: None) -> None:
    with pytest.raises(ConfigError, match="max_concurrency") as caught:
        call_with_config("folder_exists", {"max_concurrency": 0}, tmp_path)
    assert "got 0" in str(caught.value)
