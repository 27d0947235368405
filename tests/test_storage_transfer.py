"""upload_folder and download_folder against a real S3 server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import storage_models as sm
from s3_server import S3Server

from caikit_mm import ModelFormatError, ModelNotFoundError, RemoteStorageError
from caikit_mm.storage import download_folder, upload_folder


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
    assert stored_keys(s3_server, s3_bucket, "") == []


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
