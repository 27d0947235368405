"""folder_exists, delete_folder and the cleanup of a failed upload, against a
real S3 server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import storage_models as sm
from s3_server import S3Server

from caikit_mm import ModelNotFoundError
from caikit_mm.storage import delete_folder, folder_exists, upload_folder


def stored_keys(server: S3Server, bucket: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def store_neighbors(server: S3Server, bucket: str) -> None:
    """Store objects that share the prefix ``models/foo`` but are not in it."""
    server.put(bucket, "models/foo-v2/config.yml", b"other model")
    server.put(bucket, "models/foo.zip", b"other archive")


def test_folder_exists_sees_folder_only(s3_server: S3Server, s3_bucket: str) -> None:
    config = {"endpoint_url": s3_server.endpoint_url}
    url = f"s3://{s3_bucket}/models/foo"
    store_neighbors(s3_server, s3_bucket)
    assert not folder_exists(url, config=config)
    assert not folder_exists(url + "/", config=config)
    s3_server.put(s3_bucket, "models/foo/weights/part-0.bin", b"w")
    assert folder_exists(url, config=config)
    assert folder_exists(url + "/", config=config)


def test_delete_folder_keeps_neighbors(s3_server: S3Server, s3_bucket: str) -> None:
    config = {"endpoint_url": s3_server.endpoint_url}
    store_neighbors(s3_server, s3_bucket)
    for key in ("models/foo/config.yml", "models/foo/weights/part-0.bin"):
        s3_server.put(s3_bucket, key, b"data")
    # Zero-byte folder markers, as some tools write them.
    s3_server.put(s3_bucket, "models/foo/", b"")
    s3_server.put(s3_bucket, "models/foo/weights/", b"")
    deleted = delete_folder(f"s3://{s3_bucket}/models/foo", config=config)
    assert deleted >= 2
    assert stored_keys(s3_server, s3_bucket) == [
        "models/foo-v2/config.yml",
        "models/foo.zip",
    ]
    assert not folder_exists(f"s3://{s3_bucket}/models/foo", config=config)


def test_delete_empty_folder_returns_zero(s3_server: S3Server, s3_bucket: str) -> None:
    config = {"endpoint_url": s3_server.endpoint_url}
    store_neighbors(s3_server, s3_bucket)
    assert delete_folder(f"s3://{s3_bucket}/models/foo", config=config) == 0
    assert len(stored_keys(s3_server, s3_bucket)) == 2


def test_delete_folder_rejects_bucket(s3_server: S3Server, s3_bucket: str) -> None:
    config = {"endpoint_url": s3_server.endpoint_url}
    s3_server.put(s3_bucket, "models/foo/config.yml", b"data")
    for url in (f"s3://{s3_bucket}", f"s3://{s3_bucket}/"):
        with pytest.raises(ValueError, match="whole bucket") as caught:
            delete_folder(url, config=config)
        assert s3_bucket in str(caught.value)
    assert stored_keys(s3_server, s3_bucket) == ["models/foo/config.yml"]


def test_missing_bucket_named(s3_server: S3Server) -> None:
    config = {"endpoint_url": s3_server.endpoint_url}
    url = "s3://caikit-mm-no-such-bucket/models/foo"
    with pytest.raises(ModelNotFoundError, match="caikit-mm-no-such-bucket"):
        folder_exists(url, config=config)
    with pytest.raises(ModelNotFoundError, match="caikit-mm-no-such-bucket"):
        delete_folder(url, config=config)


def test_failed_upload_leaves_nothing(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    folder = sm.write_folder(tmp_path / "model", sm.model_files("partial", extra=3))
    # A dangling link sorts last, so the other files are uploaded before it fails.
    os.symlink(tmp_path / "missing", folder / "zz-dangling.bin")
    config = {"endpoint_url": s3_server.endpoint_url, "max_concurrency": 1}
    with pytest.raises(ModelNotFoundError):
        upload_folder(folder, f"s3://{s3_bucket}/models/foo", config=config)
    assert stored_keys(s3_server, s3_bucket) == []


def test_failed_overwrite_keeps_old_objects(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    s3_server.put(s3_bucket, "models/foo/config.yml", b"old model")
    folder = sm.write_folder(tmp_path / "model", sm.model_files("new", extra=1))
    os.symlink(tmp_path / "missing", folder / "zz-dangling.bin")
    config = {"endpoint_url": s3_server.endpoint_url, "max_concurrency": 1}
    with pytest.raises(ModelNotFoundError):
        upload_folder(
            folder, f"s3://{s3_bucket}/models/foo", config=config, overwrite=True
        )
    # The old config.yml is still there: config.yml is uploaded last.
    assert "models/foo/config.yml" in stored_keys(s3_server, s3_bucket)
    body = s3_server.client().get_object(Bucket=s3_bucket, Key="models/foo/config.yml")
    assert body["Body"].read() == b"old model"
