"""The RAY trainer in job mode, against a ``ray start --head`` node's job server."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ray_modules import Interruptible
from ray_support import RUNTIME_ENV, HeadNode
from training_modules import Blocking, Echo, Failing, wait_for_file

from caikit_mm import ModelManager
from caikit_mm.errors import TrainingError, TrainingIdInUseError, TrainingProcessError
from caikit_mm.model_management.training import TrainingStatus
from caikit_mm.ray._job import submission_id

WAIT = 120.0


def job_config(node: HeadNode, **trainer: Any) -> dict[str, Any]:
    config = {
        "address": node.job_server,
        "mode": "job",
        "num_cpus": 1,
        "python_executable": sys.executable,
        "runtime_env": RUNTIME_ENV,
        "poll_interval": "0.2s",
        "auth_token_env": "",
        "auth_token_file": node.token_file,
        **trainer,
    }
    return {
        "model_management": {"trainers": {"job": {"type": "RAY", "config": config}}}
    }


def wait_for_job_end(node: HeadNode, sid: str) -> str:
    """Wait until the cluster reports a terminal status for ``sid``; return it."""
    client = node.client()
    deadline = time.monotonic() + WAIT
    status = ""
    while time.monotonic() < deadline:
        status = str(client.get_job_status(sid)).rsplit(".", 1)[-1]
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            return status
        time.sleep(0.2)
    return status


@pytest.fixture
def manager(ray_head: HeadNode) -> ModelManager:
    return ModelManager(job_config(ray_head))


def test_job_trains_and_saves(
    manager: ModelManager, ray_head: HeadNode, tmp_path: Path
) -> None:
    future = manager.train(
        Echo, trainer="job", save_path=tmp_path / "echo", value=7, wait=True
    )
    assert future.status is TrainingStatus.COMPLETED, future.info().errors
    assert future.load().value == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["echo"]
    status = wait_for_job_end(ray_head, submission_id(future.id))
    assert status == "SUCCEEDED"


def test_job_failure_keeps_exception(manager: ModelManager, tmp_path: Path) -> None:
    future = manager.train(
        Failing, trainer="job", save_path=tmp_path / "f", message="bad rows", wait=True
    )
    assert future.status is TrainingStatus.ERRORED
    assert future.info().errors == ["ValueError: bad rows"]
    with pytest.raises(ValueError) as caught:
        future.load()
    assert str(caught.value) == "bad rows"
    assert not (tmp_path / "f").exists()


def test_failing_entrypoint_is_errored(ray_head: HeadNode, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-python")
    manager = ModelManager(job_config(ray_head, python_executable=missing))
    future = manager.train(Echo, trainer="job", save_path=tmp_path / "m", wait=True)
    assert future.status is TrainingStatus.ERRORED
    error = future.exception()
    assert isinstance(error, TrainingProcessError)
    assert submission_id(future.id) in str(error)
    assert "python_executable" in str(error)
    sid = submission_id(future.id)
    assert wait_for_job_end(ray_head, sid) == "FAILED"


def test_exit_zero_without_record_is_errored(
    ray_head: HeadNode, tmp_path: Path
) -> None:
    # "true" ignores its arguments and exits 0, so Ray reports SUCCEEDED.
    manager = ModelManager(job_config(ray_head, python_executable="true"))
    future = manager.train(Echo, trainer="job", save_path=tmp_path / "m", wait=True)
    sid = submission_id(future.id)
    assert wait_for_job_end(ray_head, sid) == "SUCCEEDED"
    assert future.status is TrainingStatus.ERRORED
    assert "without reporting a saved model" in future.info().errors[0]
    with pytest.raises(TrainingProcessError):
        future.load()


def test_retried_submission_follows_job(ray_head: HeadNode, tmp_path: Path) -> None:
    marker, release = tmp_path / "started", tmp_path / "release"
    arguments = {"marker": str(marker), "release": str(release), "value": "once"}
    first_manager = ModelManager(job_config(ray_head))
    first = first_manager.train(
        Blocking,
        trainer="job",
        save_path=tmp_path / "m",
        training_id="retry-once",
        **arguments,
    )
    wait_for_file(marker)
    # The manager that started it does not submit a running id again.
    with pytest.raises(TrainingIdInUseError):
        first_manager.train(
            Blocking,
            trainer="job",
            save_path=tmp_path / "m",
            training_id="retry-once",
            **arguments,
        )
    # A second process (another manager) submitting the same training follows
    # the running job.
    second = ModelManager(job_config(ray_head)).train(
        Blocking,
        trainer="job",
        save_path=tmp_path / "m",
        training_id="retry-once",
        **arguments,
    )
    release.write_text("go", encoding="utf-8")
    assert first.wait(WAIT) is TrainingStatus.COMPLETED
    assert second.wait(WAIT) is TrainingStatus.COMPLETED
    assert second.load().value == "once"
    sid = submission_id("retry-once")
    jobs = [job for job in ray_head.client().list_jobs() if job.submission_id == sid]
    assert len(jobs) == 1


def test_same_id_other_save_path_rejected(
    manager: ModelManager, tmp_path: Path
) -> None:
    future = manager.train(
        Echo, trainer="job", save_path=tmp_path / "a", training_id="fixed", wait=True
    )
    assert future.status is TrainingStatus.COMPLETED
    other = ModelManager(manager.config)
    with pytest.raises(TrainingIdInUseError, match="saves to"):
        other.train(Echo, trainer="job", save_path=tmp_path / "b", training_id="fixed")


def test_other_manager_finds_job_by_id(
    manager: ModelManager, ray_head: HeadNode, tmp_path: Path
) -> None:
    future = manager.train(Echo, trainer="job", save_path=tmp_path / "m", value=3)
    other = ModelManager(job_config(ray_head))
    followed = other.get_model_future(future.id)
    assert followed is not future
    assert followed.wait(WAIT) is TrainingStatus.COMPLETED
    assert followed.load().value == 3


def test_job_cancel(manager: ModelManager, ray_head: HeadNode, tmp_path: Path) -> None:
    marker, stopped = tmp_path / "started", tmp_path / "stopped"
    future = manager.train(
        Interruptible,
        trainer="job",
        save_path=tmp_path / "m",
        marker=str(marker),
        stopped=str(stopped),
    )
    wait_for_file(marker)
    future.cancel()
    assert future.status is TrainingStatus.CANCELED
    with pytest.raises(TrainingError, match="was canceled"):
        future.load()
    sid = submission_id(future.id)
    assert wait_for_job_end(ray_head, sid) == "STOPPED"
    # SIGTERM from Ray ends train in the entrypoint.
    assert wait_for_file(stopped) == "SystemExit"
    assert not (tmp_path / "m").exists()


def test_unreachable_job_server_names_address(tmp_path: Path) -> None:
    from ray_support import free_port

    address = f"http://127.0.0.1:{free_port()}"
    config = job_config(HeadNode("", "", address), connect_timeout="5s")
    manager = ModelManager(config)
    with pytest.raises(TrainingError) as caught:
        manager.train(Echo, trainer="job", save_path=tmp_path / "m")
    assert address in str(caught.value)


def test_token_from_environment(
    ray_head: HeadNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIKIT_MM_TEST_RAY_TOKEN", ray_head.token)
    config = job_config(
        ray_head, auth_token_env="CAIKIT_MM_TEST_RAY_TOKEN", auth_token_file=""
    )
    future = ModelManager(config).train(
        Echo, trainer="job", save_path=tmp_path / "m", value=5, wait=True
    )
    assert future.status is TrainingStatus.COMPLETED, future.info().errors


def test_missing_token_rejected(ray_head: HeadNode, tmp_path: Path) -> None:
    manager = ModelManager(job_config(ray_head, auth_token_file=""))
    with pytest.raises(TrainingError) as caught:
        manager.train(Echo, trainer="job", save_path=tmp_path / "m")
    assert ray_head.job_server in str(caught.value)
    assert "auth_token_env or auth_token_file" in str(caught.value)
