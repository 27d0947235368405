"""The RAY trainer in task mode, on a local 2-CPU Ray instance.

Also the RAY types' configuration checks and the reachability check of save
paths, which need no cluster.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ray_modules import FailsInWorker, Interruptible
from ray_support import RUNTIME_ENV
from training_modules import Echo, Failing, TwoPartError, wait_for_file

from caikit_mm import ModelManager
from caikit_mm.errors import (
    ConfigError,
    SavePathExistsError,
    TrainingError,
    TrainingProcessError,
)
from caikit_mm.model_management.training import TrainingStatus
from caikit_mm.ray._cluster import check_reachable, filesystem_type

WAIT = 120.0


def ray_config(**trainer: Any) -> dict[str, Any]:
    config = {"mode": "task", "num_cpus": 1, "runtime_env": RUNTIME_ENV, **trainer}
    return {
        "model_management": {"trainers": {"ray": {"type": "RAY", "config": config}}}
    }


@pytest.fixture
def manager(ray_local: Any) -> ModelManager:
    return ModelManager(ray_config())


def wait_for_status(future: Any, status: TrainingStatus) -> None:
    deadline = time.monotonic() + WAIT
    while future.status is not status:
        assert time.monotonic() < deadline, f"{future!r} never became {status}"
        time.sleep(0.01)


# Configuration ----------------------------------------------------------------


def test_default_config_has_ray_instances() -> None:
    manager = ModelManager()
    assert "ray" in manager.config.section("trainer")
    assert "ray" in manager.config.section("initializer")
    assert manager.config.instance("trainer", "ray")[0] == "RAY"
    assert manager.config.instance("initializer", "ray")[0] == "RAY"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("mode", "batch", "mode must be one of task, job"),
        ("address", "s3://bucket", "has the scheme 's3'"),
        ("address", "head-without-port", "needs a host and a port"),
        ("num_cpus", -1, "num_cpus must be a number of 0 or more"),
        ("memory", "lots", "invalid memory size 'lots'"),
        ("resources", {"CPU": 1}, "use num_cpus, num_gpus or memory"),
        ("max_retries", 1.5, "max_retries must be an integer of 0 or more"),
        ("poll_interval", "soon", "invalid duration 'soon'"),
        ("tls_verify", 3, "tls_verify must be true, false or the path"),
        ("shared_paths", ["relative/dir"], "list of absolute folder paths"),
        ("storage_finder", "", "storage_finder must be a non-empty string"),
        ("adress", "auto", "unknown key(s) 'adress'"),
    ],
)
def test_trainer_config_rejects_bad_values(key: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ModelManager(ray_config(**{key: value}))
    assert expected in str(caught.value)
    assert "model_management.trainers.ray.config" in str(caught.value)


def test_initializer_detached_needs_actor_name() -> None:
    config = {"initializers": {"ray": {"type": "RAY", "config": {"detached": True}}}}
    with pytest.raises(ConfigError) as caught:
        ModelManager({"model_management": config})
    assert "detached: true needs an actor_name" in str(caught.value)


def test_initializer_rejects_unknown_template_field() -> None:
    config = {"initializers": {"ray": {"type": "RAY", "config": {"actor_name": "{x}"}}}}
    with pytest.raises(ConfigError) as caught:
        ModelManager({"model_management": config})
    assert "available fields" in str(caught.value)
    assert "{model_key}" in str(caught.value)


# Reachability of save paths ---------------------------------------------------


def test_local_path_rejected_for_remote_cluster(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as caught:
        check_reachable(
            str(tmp_path / "model"),
            cluster_local=False,
            shared_paths=[],
            what="save_path",
            cluster="'10.0.0.5:6379'",
            owner="trainer 'ray'",
        )
    message = str(caught.value)
    assert str(tmp_path / "model") in message
    assert "cannot reach it" in message
    assert "shared_paths of trainer 'ray'" in message
    assert filesystem_type(str(tmp_path)) in message


def test_shared_path_accepted_for_remote_cluster(tmp_path: Path) -> None:
    check_reachable(
        str(tmp_path / "a" / "model"),
        cluster_local=False,
        shared_paths=[str(tmp_path)],
        what="save_path",
        cluster="'10.0.0.5:6379'",
        owner="trainer 'ray'",
    )


# Task mode --------------------------------------------------------------------


def test_task_trains_and_saves(manager: ModelManager, tmp_path: Path) -> None:
    future = manager.train(
        Echo, trainer="ray", save_path=tmp_path / "echo", value=41, wait=True
    )
    assert future.status is TrainingStatus.COMPLETED
    assert future.info().start_time is not None
    assert (tmp_path / "echo" / "config.yml").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["echo"]
    model = future.load()
    assert isinstance(model, Echo)
    assert model.value == 41
    assert manager.get_model_future(future.id) is future


def test_task_without_save_path_returns_model(manager: ModelManager) -> None:
    future = manager.train(Echo, trainer="ray", value=[1, 2], wait=True)
    assert future.status is TrainingStatus.COMPLETED
    assert future.save_path is None
    assert future.load().value == [1, 2]


def test_task_failure_keeps_exception(manager: ModelManager, tmp_path: Path) -> None:
    future = manager.train(
        Failing, trainer="ray", save_path=tmp_path / "f", message="bad data", wait=True
    )
    assert future.status is TrainingStatus.ERRORED
    assert future.info().errors == ["ValueError: bad data"]
    with pytest.raises(ValueError) as caught:
        future.load()
    assert str(caught.value) == "bad data"
    assert not (tmp_path / "f").exists()


def test_task_failing_before_start(manager: ModelManager) -> None:
    future = manager.train(Echo, trainer="ray", value=FailsInWorker(), wait=True)
    assert future.status is TrainingStatus.ERRORED
    assert future.info().start_time is None
    assert "FailsInWorker cannot be unpickled" in str(future.exception())


def test_task_unpicklable_error(manager: ModelManager, tmp_path: Path) -> None:
    future = manager.train(
        Failing, trainer="ray", save_path=tmp_path / "f", unpicklable=True, wait=True
    )
    assert future.status is TrainingStatus.ERRORED
    error = future.exception()
    assert isinstance(error, (TwoPartError, TrainingProcessError))
    assert "a second part" in str(error)


def test_task_cancel(manager: ModelManager, tmp_path: Path) -> None:
    marker, stopped = tmp_path / "started", tmp_path / "stopped"
    future = manager.train(
        Interruptible,
        trainer="ray",
        save_path=tmp_path / "blocked",
        marker=str(marker),
        stopped=str(stopped),
    )
    wait_for_file(marker)
    # The watcher reports RUNNING shortly after the task starts.
    wait_for_status(future, TrainingStatus.RUNNING)
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    future.cancel()
    assert future.status is TrainingStatus.CANCELED
    assert done.wait(WAIT)
    with pytest.raises(TrainingError, match="was canceled"):
        future.load()
    # The cancel reached train in the Ray worker, which records how it ended.
    assert wait_for_file(stopped) == "KeyboardInterrupt"
    assert not (tmp_path / "blocked").exists()


def test_task_save_path_exists(manager: ModelManager, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(SavePathExistsError):
        manager.train(Echo, trainer="ray", save_path=tmp_path / "taken")


def test_task_save_path_under_file(manager: ModelManager, tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        manager.train(Echo, trainer="ray", save_path=tmp_path / "plain-file" / "m")
    assert manager.get_trainer("ray").list_futures() == []
