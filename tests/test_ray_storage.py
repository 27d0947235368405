"""The RAY trainer and initializer with models in an object store.

A moto S3 server on 127.0.0.1 stands in for the store, and the session's local
2-CPU Ray instance runs the tasks and actors. The workers get the fake AWS
credentials through ``runtime_env``, and the endpoint only through the
``s3`` finder's config, so a passing upload shows that the finder's storage
settings reach the workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from ray_modules import save_scaler
from ray_support import RUNTIME_ENV
from s3_server import FAKE_AWS_ENV, S3Server
from training_modules import Echo, Failing

from caikit_mm import ModelManager
from caikit_mm.errors import RemoteStorageError
from caikit_mm.model_management.training import TrainingStatus
from caikit_mm.ray import RemoteModel

WAIT = 120.0
# The environment's endpoint is a closed port on 127.0.0.1: only the finder's
# endpoint_url reaches the moto server, and nothing can reach AWS itself.
WORKER_ENV = {
    "env_vars": {
        **RUNTIME_ENV["env_vars"],
        **FAKE_AWS_ENV,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }
}


def storage_config(server: S3Server, cache_dir: Path, **trainer: Any) -> dict[str, Any]:
    ray = {"num_cpus": 1, "runtime_env": WORKER_ENV, **trainer}
    return {
        "model_management": {
            "trainers": {"ray": {"type": "RAY", "config": ray}},
            "finders": {
                "s3": {"type": "REMOTE", "config": server.finder_config(cache_dir)}
            },
            "initializers": {
                "ray": {
                    "type": "RAY",
                    "config": {"num_cpus": 0, "runtime_env": WORKER_ENV},
                },
            },
        }
    }


@pytest.fixture
def manager(ray_local: Any, s3_server: S3Server, tmp_path: Path) -> ModelManager:
    return ModelManager(storage_config(s3_server, tmp_path / "cache"))


def stored_keys(server: S3Server, bucket: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


# Training to a URL ------------------------------------------------------------


def test_task_uploads_model(
    manager: ModelManager, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    future = manager.train(
        Echo,
        trainer="ray",
        save_path=f"s3://{s3_bucket}/models/",
        model_name="echo",
        value=[4, 2],
        wait=True,
    )
    assert future.status is TrainingStatus.COMPLETED, future.info().errors
    assert future.save_path == f"s3://{s3_bucket}/models/echo"
    assert stored_keys(s3_server, s3_bucket) == ["models/echo/config.yml"]
    model = future.load()
    assert isinstance(model, Echo)
    assert model.value == [4, 2]
    # load() read the model back through the s3 finder, whose cache it filled.
    assert list((tmp_path / "cache").rglob("config.yml"))


def test_task_upload_with_training_id(
    manager: ModelManager, s3_server: S3Server, s3_bucket: str
) -> None:
    future = manager.train(
        Echo,
        trainer="ray",
        save_path=f"s3://{s3_bucket}/runs",
        save_with_id=True,
        training_id="upload-with-id",
        wait=True,
    )
    assert future.status is TrainingStatus.COMPLETED, future.info().errors
    assert stored_keys(s3_server, s3_bucket) == ["runs/upload-with-id/config.yml"]


def test_task_upload_keeps_existing_model(
    manager: ModelManager, s3_server: S3Server, s3_bucket: str
) -> None:
    s3_server.put(s3_bucket, "models/taken/weights.bin", b"older model")
    future = manager.train(
        Echo, trainer="ray", save_path=f"s3://{s3_bucket}/models/taken", wait=True
    )
    assert future.status is TrainingStatus.ERRORED
    with pytest.raises(RemoteStorageError, match="overwrite=True"):
        future.load()
    assert stored_keys(s3_server, s3_bucket) == ["models/taken/weights.bin"]


def test_task_upload_overwrite(
    manager: ModelManager, s3_server: S3Server, s3_bucket: str
) -> None:
    s3_server.put(s3_bucket, "models/taken/weights.bin", b"older model")
    future = manager.train(
        Echo,
        trainer="ray",
        save_path=f"s3://{s3_bucket}/models/taken",
        overwrite=True,
        value=7,
        wait=True,
    )
    assert future.status is TrainingStatus.COMPLETED, future.info().errors
    assert stored_keys(s3_server, s3_bucket) == ["models/taken/config.yml"]
    assert future.load().value == 7


def test_task_failure_uploads_nothing(
    manager: ModelManager, s3_server: S3Server, s3_bucket: str
) -> None:
    future = manager.train(
        Failing,
        trainer="ray",
        save_path=f"s3://{s3_bucket}/models/failed",
        message="bad labels",
        wait=True,
    )
    assert future.status is TrainingStatus.ERRORED
    with pytest.raises(ValueError, match="bad labels"):
        future.load()
    assert stored_keys(s3_server, s3_bucket) == []


def test_storage_finder_must_be_remote(
    ray_local: Any, s3_server: S3Server, tmp_path: Path
) -> None:
    config = storage_config(s3_server, tmp_path, storage_finder="default")
    with pytest.raises(ValueError) as caught:
        ModelManager(config).train(Echo, trainer="ray", save_path="s3://b/m")
    message = str(caught.value)
    assert "finder 'default' (storage_finder)" in message
    assert "of type LOCAL" in message
    assert "type REMOTE" in message


def test_job_mode_rejects_url(s3_server: S3Server, tmp_path: Path) -> None:
    config = storage_config(s3_server, tmp_path, mode="job")
    with pytest.raises(ValueError) as caught:
        ModelManager(config).train(Echo, trainer="ray", save_path="s3://b/models")
    assert "'s3://b/models' is a URL" in str(caught.value)
    assert "mode: task" in str(caught.value)


# Loading from a URL into an actor ----------------------------------------------


def test_actor_loads_model_from_store(
    manager: ModelManager,
    ray_local: Any,
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    folder = Path(save_scaler(tmp_path / "scaler", 4.0))
    s3_server.put_folder(s3_bucket, "models/scaler", folder)
    url = f"s3://{s3_bucket}/models/scaler"
    model = manager.load(url, finder="s3", initializer="ray")
    assert isinstance(model, RemoteModel)
    assert model.run([1.0, 2.5]) == [4.0, 10.0]
    assert model.location["pid"] != os.getpid()
    # The actor read the s3 finder's download, not the folder saved above.
    described = ray_local.get(model.actor.describe.remote(), timeout=WAIT)
    assert described["model_path"].startswith(str(tmp_path / "cache"))
    assert manager.unload(url, finder="s3", initializer="ray")
