"""The RAY trainer and initializer with models in an object store.

A moto S3 server on 127.0.0.1 stands in for the store. The session's local
2-CPU Ray instance runs the tasks and actors, and a ``ray start --head`` node
runs the jobs. The workers and jobs get the fake AWS credentials through
``runtime_env``, and the endpoint only through the ``s3`` finder's config, so
a passing upload shows that the finder's storage settings reach them.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from ray_modules import FinishesAfterCancel, save_scaler
from ray_support import RUNTIME_ENV, HeadNode
from s3_server import FAKE_AWS_ENV, S3Server
from training_modules import Blocking, Echo, Failing, wait_for_file

from caikit_mm import ModelManager
from caikit_mm.errors import RemoteStorageError, SavePathExistsError
from caikit_mm.model_management.training import TrainingStatus
from caikit_mm.ray import RemoteModel
from caikit_mm.ray._job import submission_id
from caikit_mm.ray._task import RayTaskFuture
from caikit_mm.ray._worker import UploadTarget
from caikit_mm.ray.trainer import RayModelTrainer

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


def wait_for_record(
    caplog: pytest.LogCaptureFixture, logger: str, text: str
) -> logging.LogRecord:
    """Wait until ``logger`` has logged a message that contains ``text``."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for record in caplog.records:
            if record.name == logger and text in record.getMessage():
                return record
        time.sleep(0.05)
    raise AssertionError(f"{logger} never logged {text!r}")


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


def test_task_rejects_occupied_url(
    manager: ModelManager, s3_server: S3Server, s3_bucket: str
) -> None:
    s3_server.put(s3_bucket, "models/taken/weights.bin", b"older model")
    url = f"s3://{s3_bucket}/models/taken"
    with pytest.raises(SavePathExistsError, match="overwrite=True") as caught:
        manager.train(Echo, trainer="ray", save_path=url)
    assert caught.value.path == url
    assert url in str(caught.value)
    assert manager.get_trainer("ray").list_futures() == []
    assert stored_keys(s3_server, s3_bucket) == ["models/taken/weights.bin"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_task_rejects_bucket_root(
    manager: ModelManager, s3_server: S3Server, s3_bucket: str, overwrite: bool
) -> None:
    s3_server.put(s3_bucket, "other/keep.bin", b"unrelated")
    with pytest.raises(ValueError, match="whole bucket"):
        manager.train(
            Echo, trainer="ray", save_path=f"s3://{s3_bucket}/", overwrite=overwrite
        )
    assert manager.get_trainer("ray").list_futures() == []
    assert stored_keys(s3_server, s3_bucket) == ["other/keep.bin"]


def test_task_url_filled_while_training(
    manager: ModelManager, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    marker, release = tmp_path / "started", tmp_path / "release"
    future = manager.train(
        Blocking,
        trainer="ray",
        save_path=f"s3://{s3_bucket}/models/taken",
        marker=str(marker),
        release=str(release),
    )
    wait_for_file(marker)
    s3_server.put(s3_bucket, "models/taken/weights.bin", b"other writer")
    release.write_text("go", encoding="utf-8")
    assert future.wait(WAIT) is TrainingStatus.ERRORED
    with pytest.raises(RemoteStorageError, match="overwrite=True"):
        future.load()
    assert stored_keys(s3_server, s3_bucket) == ["models/taken/weights.bin"]


def test_task_cancel_before_outcome_deletes(
    manager: ModelManager,
    s3_server: S3Server,
    s3_bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A cancel before start() makes the order certain: the task still trains
    # and uploads, and its outcome arrives at a future that is CANCELED.
    caplog.set_level(logging.INFO, logger="caikit_mm.ray._worker")
    trainer = manager.get_trainer("ray")
    assert isinstance(trainer, RayModelTrainer)
    url = f"s3://{s3_bucket}/models/canceled"
    upload = UploadTarget(url, trainer.storage_config())
    future = RayTaskFuture(
        trainer, Echo, (), {"value": 1}, "cancel-first", url, False, upload
    )
    future.cancel()
    future.start()
    record = wait_for_record(caplog, "caikit_mm.ray._worker", "cancel-first")
    assert "deleted 1 files" in record.getMessage()
    assert stored_keys(s3_server, s3_bucket) == []
    assert future.status is TrainingStatus.CANCELED


# Job mode ------------------------------------------------------------------------


@pytest.fixture
def job_manager(
    ray_head: HeadNode, s3_server: S3Server, tmp_path: Path
) -> ModelManager:
    config = storage_config(
        s3_server,
        tmp_path / "cache",
        address=ray_head.job_server,
        mode="job",
        python_executable=sys.executable,
        poll_interval="0.2s",
        auth_token_env="",
        auth_token_file=ray_head.token_file,
    )
    return ModelManager(config)


def staged_packages() -> set[str]:
    """List this machine's payload package folders of jobs, by name."""
    return {
        name
        for name in os.listdir(tempfile.gettempdir())
        if name.startswith("caikit-mm-job-")
    }


def test_job_uploads_model(
    job_manager: ModelManager,
    ray_head: HeadNode,
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    before = staged_packages()
    future = job_manager.train(
        Echo,
        trainer="ray",
        save_path=f"s3://{s3_bucket}/models/",
        model_name="echo",
        value=[4, 2],
        wait=True,
    )
    assert future.status is TrainingStatus.COMPLETED, future.info().errors
    assert future.save_path == f"s3://{s3_bucket}/models/echo"
    # Nothing but the model reaches the store: the payload went with the job.
    assert stored_keys(s3_server, s3_bucket) == ["models/echo/config.yml"]
    assert future.load().value == [4, 2]
    assert list((tmp_path / "cache").rglob("config.yml"))
    details = ray_head.client().get_job_info(submission_id(future.id))
    modules = details.runtime_env["py_modules"]
    assert len(modules) == 1
    assert modules[0].startswith("gcs://")
    assert staged_packages() <= before


def test_job_rejects_occupied_url(
    job_manager: ModelManager, ray_head: HeadNode, s3_server: S3Server, s3_bucket: str
) -> None:
    s3_server.put(s3_bucket, "models/taken/weights.bin", b"older model")
    url = f"s3://{s3_bucket}/models/taken"
    with pytest.raises(SavePathExistsError, match="overwrite=True"):
        job_manager.train(Echo, trainer="ray", save_path=url, training_id="taken-url")
    sid = submission_id("taken-url")
    jobs = [job for job in ray_head.client().list_jobs() if job.submission_id == sid]
    assert jobs == []
    assert stored_keys(s3_server, s3_bucket) == ["models/taken/weights.bin"]


def test_job_upload_overwrite(
    job_manager: ModelManager, s3_server: S3Server, s3_bucket: str
) -> None:
    s3_server.put(s3_bucket, "models/taken/weights.bin", b"older model")
    future = job_manager.train(
        Echo,
        trainer="ray",
        save_path=f"s3://{s3_bucket}/models/taken",
        overwrite=True,
        value=9,
        wait=True,
    )
    assert future.status is TrainingStatus.COMPLETED, future.info().errors
    assert stored_keys(s3_server, s3_bucket) == ["models/taken/config.yml"]
    assert future.load().value == 9


def test_job_failure_uploads_nothing(
    job_manager: ModelManager, s3_server: S3Server, s3_bucket: str
) -> None:
    future = job_manager.train(
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


def test_job_cancel_after_upload_deletes(
    job_manager: ModelManager,
    ray_head: HeadNode,
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The job's entrypoint logs at the level of this process's root logger.
    caplog.set_level(logging.INFO)
    marker, stopped = tmp_path / "started", tmp_path / "stopped"
    future = job_manager.train(
        FinishesAfterCancel,
        trainer="ray",
        save_path=f"s3://{s3_bucket}/models/canceled",
        marker=str(marker),
        stopped=str(stopped),
    )
    wait_for_file(marker)
    future.cancel()
    assert future.status is TrainingStatus.CANCELED
    # train swallowed SIGTERM's SystemExit, so the job went on to upload.
    assert wait_for_file(stopped) == "SystemExit"
    client = ray_head.client()
    sid = submission_id(future.id)
    deadline = time.monotonic() + WAIT
    while str(client.get_job_status(sid)).rsplit(".", 1)[-1] != "STOPPED":
        assert time.monotonic() < deadline, "the job never stopped"
        time.sleep(0.2)
    assert "deleted 1 files" in client.get_job_logs(sid)
    assert stored_keys(s3_server, s3_bucket) == []


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
