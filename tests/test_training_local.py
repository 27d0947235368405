"""The LOCAL trainer through ModelManager.train, in a thread and in a subprocess.

Subprocess jobs start real child interpreters with the spawn start method and
train the modules in ``training_modules``; nothing is mocked.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from training_modules import (
    Blocking,
    Combine,
    Echo,
    Exiting,
    Failing,
    SlowSave,
    TwoPartError,
    wait_for_file,
)

from caikit_mm import (
    ModelManager,
    ModelTrainer,
    SavePathExistsError,
    TrainingError,
    TrainingIdInUseError,
    TrainingNotFoundError,
    TrainingProcessError,
    TrainingStatus,
)
from caikit_mm.model_management._training_common import (
    SIBLING_NAME_EXTRA,
    TEMP_MARKER,
    make_temp_folder,
)
from caikit_mm.testing import TrainerConformance

WAIT = 60  # seconds; only a guard against a hang, never a measured limit
GRACE = 1.0  # cancel_grace_period of the subprocess trainers here, in seconds
MODES = ["thread", "subprocess"]


def make_manager(**extra_trainers: dict[str, Any]) -> ModelManager:
    trainers: dict[str, Any] = {
        "default": {"type": "LOCAL", "config": {"use_subprocess": False}},
        "subprocess": {
            "type": "LOCAL",
            "config": {"use_subprocess": True, "cancel_grace_period": f"{GRACE}s"},
        },
    }
    trainers.update(extra_trainers)
    return ModelManager(config={"model_management": {"trainers": trainers}})


@pytest.fixture
def manager() -> ModelManager:
    return make_manager()


def trainer_for(mode: str) -> str:
    return "default" if mode == "thread" else "subprocess"


def siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# Success -------------------------------------------------------------------------


class TestLocalTrainerConformance(TrainerConformance):
    @pytest.fixture(params=MODES)
    def trainer(self, request: pytest.FixtureRequest) -> ModelTrainer:
        # The manager must outlive the test, because trainers refer to it weakly.
        request.node.manager = make_manager()
        trainer: ModelTrainer = request.node.manager.get_trainer(
            trainer_for(request.param)
        )
        return trainer

    @pytest.fixture
    def module_class(self) -> type[Echo]:
        return Echo

    @pytest.fixture
    def train_kwargs(self) -> dict[str, Any]:
        return {"value": "conformance"}

    @pytest.fixture
    def save_path(self, tmp_path: Path) -> str:
        return str(tmp_path / "model")


def test_thread_train_without_save_path(manager: ModelManager) -> None:
    future = manager.train(Echo, value=7)
    model = future.load(timeout=WAIT)
    assert isinstance(model, Echo)
    assert model.value == 7
    assert future.status is TrainingStatus.COMPLETED
    assert future.save_path is None
    assert future.id.startswith("default-")


def test_subprocess_train_without_save_path_rejected(manager: ModelManager) -> None:
    with pytest.raises(ValueError, match="needs a save_path"):
        manager.train(Echo, value=7, trainer="subprocess")


@pytest.mark.parametrize("mode", MODES)
def test_train_with_save_path(manager: ModelManager, mode: str, tmp_path: Path) -> None:
    save_path = tmp_path / "models" / "echo"
    future = manager.train(
        Echo, value=[1, 2], trainer=trainer_for(mode), save_path=save_path
    )
    model = future.load(timeout=WAIT)
    assert model.value == [1, 2]
    assert future.save_path == str(save_path)
    assert (save_path / "config.yml").is_file()
    assert siblings(save_path.parent) == ["echo"]
    reloaded = manager.load(str(save_path), cache=False)
    assert reloaded.value == [1, 2]
    info = future.info()
    assert info.status is TrainingStatus.COMPLETED
    assert info.errors == []
    assert info.submission_time <= info.start_time <= info.completion_time


@pytest.mark.parametrize("mode", MODES)
def test_train_save_with_id_and_model_name(
    manager: ModelManager, mode: str, tmp_path: Path
) -> None:
    future = manager.train(
        Echo,
        value=3,
        trainer=trainer_for(mode),
        save_path=tmp_path,
        save_with_id=True,
        model_name="echo-model",
    )
    future.wait(timeout=WAIT)
    expected = tmp_path / future.id / "echo-model"
    assert future.save_path == str(expected)
    assert future.load().value == 3
    assert (expected / "config.yml").is_file()
    assert siblings(tmp_path) == [future.id]


@pytest.mark.parametrize("mode", MODES)
def test_train_model_name_only(
    manager: ModelManager, mode: str, tmp_path: Path
) -> None:
    future = manager.train(
        Echo, value=4, trainer=trainer_for(mode), save_path=tmp_path, model_name="m"
    )
    assert future.load(timeout=WAIT).value == 4
    assert future.save_path == str(tmp_path / "m")


def test_train_by_module_id(manager: ModelManager, tmp_path: Path) -> None:
    future = manager.train("training-test-echo", value="by id", wait=True)
    assert future.status is TrainingStatus.COMPLETED
    assert future.load().value == "by id"


def test_train_rejects_non_module(manager: ModelManager) -> None:
    with pytest.raises(
        TypeError, match="ModuleBase subclass or a registered module id"
    ):
        manager.train(object)  # type: ignore[arg-type]


def test_train_wait_returns_terminal_future(
    manager: ModelManager, tmp_path: Path
) -> None:
    future = manager.train(
        Echo, trainer="subprocess", save_path=tmp_path / "m", wait=True
    )
    assert future.done()
    assert future.status is TrainingStatus.COMPLETED
    assert future.result().value == 1


# Failures --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_train_error_reraised_with_type(
    manager: ModelManager, mode: str, tmp_path: Path
) -> None:
    save_path = tmp_path / "failed"
    future = manager.train(
        Failing,
        message="bad column 'x'",
        trainer=trainer_for(mode),
        save_path=save_path,
    )
    assert future.wait(timeout=WAIT) is TrainingStatus.ERRORED
    with pytest.raises(ValueError, match="bad column 'x'") as caught:
        future.load()
    assert type(caught.value) is ValueError
    assert future.info().errors == ["ValueError: bad column 'x'"]
    assert siblings(tmp_path) == []
    if mode == "subprocess":
        notes = "\n".join(getattr(caught.value, "__notes__", []))
        assert "Traceback in the training subprocess" in notes
        assert "training_modules.py" in notes


def test_subprocess_unpicklable_error_described(
    manager: ModelManager, tmp_path: Path
) -> None:
    future = manager.train(
        Failing, unpicklable=True, trainer="subprocess", save_path=tmp_path / "m"
    )
    future.wait(timeout=WAIT)
    with pytest.raises(TrainingProcessError) as caught:
        future.load()
    error = caught.value
    assert error.original_type == "training_modules.TwoPartError"
    assert "planned failure and a second part" in str(error)
    assert "raise TwoPartError" in error.child_traceback
    assert error.exit_code is None


def test_thread_unpicklable_error_is_original(manager: ModelManager) -> None:
    future = manager.train(Failing, unpicklable=True)
    future.wait(timeout=WAIT)
    with pytest.raises(TwoPartError):
        future.load()


def test_subprocess_exit_without_result(manager: ModelManager, tmp_path: Path) -> None:
    future = manager.train(
        Exiting, code=3, trainer="subprocess", save_path=tmp_path / "m"
    )
    assert future.wait(timeout=WAIT) is TrainingStatus.ERRORED
    with pytest.raises(TrainingProcessError, match="exited with code 3") as caught:
        future.load()
    assert caught.value.exit_code == 3
    assert siblings(tmp_path) == []


@pytest.mark.parametrize("during", ["train", "save"])
def test_subprocess_sigkill_errors_job(
    manager: ModelManager, tmp_path: Path, during: str
) -> None:
    marker = tmp_path / "started"
    models = tmp_path / "models"
    save_path = models / "victim"
    if during == "train":
        future = manager.train(
            Blocking, marker=str(marker), trainer="subprocess", save_path=save_path
        )
    else:
        future = manager.train(
            SlowSave, marker=str(marker), trainer="subprocess", save_path=save_path
        )
    pid = int(wait_for_file(marker))
    assert pid == future.pid
    os.kill(pid, signal.SIGKILL)
    assert future.wait(timeout=WAIT) is TrainingStatus.ERRORED
    with pytest.raises(
        TrainingProcessError, match="killed by signal SIGKILL"
    ) as caught:
        future.load()
    assert caught.value.signal_name == "SIGKILL"
    assert caught.value.exit_code == -signal.SIGKILL
    assert not save_path.exists()
    assert siblings(models) == []


def test_thread_save_failure_leaves_nothing(
    manager: ModelManager, tmp_path: Path
) -> None:
    save_path = tmp_path / "models" / "m"
    future = manager.train(
        SlowSave, marker=str(tmp_path / "marker"), fail=True, save_path=save_path
    )
    assert future.wait(timeout=WAIT) is TrainingStatus.ERRORED
    with pytest.raises(OSError, match="disk full"):
        future.load()
    assert (tmp_path / "marker").exists()
    assert siblings(tmp_path / "models") == []


@pytest.mark.parametrize("mode", MODES)
def test_existing_save_path_rejected_before_training(
    manager: ModelManager, mode: str, tmp_path: Path
) -> None:
    save_path = tmp_path / "taken"
    save_path.mkdir()
    (save_path / "keep.txt").write_text("keep", encoding="utf-8")
    marker = tmp_path / "marker"
    with pytest.raises(SavePathExistsError, match="already exists"):
        manager.train(
            Blocking,
            marker=str(marker),
            trainer=trainer_for(mode),
            save_path=save_path,
        )
    assert not marker.exists()
    assert siblings(save_path) == ["keep.txt"]


@pytest.mark.parametrize("mode", MODES)
def test_overwrite_replaces_model(
    manager: ModelManager, mode: str, tmp_path: Path
) -> None:
    save_path = tmp_path / "model"
    first = manager.train(
        Echo, value="old", trainer=trainer_for(mode), save_path=save_path
    )
    first.wait(timeout=WAIT)
    (save_path / "stale.txt").write_text("stale", encoding="utf-8")
    second = manager.train(
        Echo,
        value="new",
        trainer=trainer_for(mode),
        save_path=save_path,
        overwrite=True,
    )
    assert second.wait(timeout=WAIT) is TrainingStatus.COMPLETED
    assert manager.load(str(save_path), cache=False).value == "new"
    assert not (save_path / "stale.txt").exists()
    assert siblings(tmp_path) == ["model"]


def train_in_parallel(
    count: int, start_training: Callable[[int], Any]
) -> tuple[list[Any], list[BaseException]]:
    """Call ``start_training(index)`` from ``count`` threads released together."""
    barrier = threading.Barrier(count)
    futures: list[Any] = []
    errors: list[BaseException] = []

    def call(index: int) -> None:
        barrier.wait(timeout=WAIT)
        try:
            futures.append(start_training(index))
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT)
    return futures, errors


@pytest.mark.parametrize("overwrite", [False, True])
def test_concurrent_trains_one_save_path(
    manager: ModelManager, tmp_path: Path, overwrite: bool
) -> None:
    release = tmp_path / "release"
    save_path = tmp_path / "model"

    def start_training(index: int) -> Any:
        return manager.train(
            Blocking,
            marker=str(tmp_path / f"started-{index}"),
            release=str(release),
            value=index,
            save_path=save_path,
            overwrite=overwrite,
        )

    futures, errors = train_in_parallel(4, start_training)
    assert len(futures) == 1
    assert len(errors) == 3
    accepted = futures[0]
    for error in errors:
        assert isinstance(error, SavePathExistsError)
        assert accepted.id in str(error)
        assert error.path == str(save_path)
    release.write_text("go", encoding="utf-8")
    assert accepted.wait(timeout=WAIT) is TrainingStatus.COMPLETED
    value = accepted.load().value
    # The rejected calls never started their training.
    started = sorted(p.name for p in tmp_path.glob("started-*"))
    assert started == [f"started-{value}"]
    assert manager.load(str(save_path), cache=False).value == value
    # The path is free again once the job is terminal.
    again = manager.train(Echo, value="again", save_path=save_path, overwrite=True)
    assert again.wait(timeout=WAIT) is TrainingStatus.COMPLETED


def test_save_path_in_use_across_trainers(
    manager: ModelManager, tmp_path: Path
) -> None:
    marker, release = tmp_path / "started", tmp_path / "release"
    save_path = tmp_path / "models" / "m"
    running = manager.train(
        Blocking, marker=str(marker), release=str(release), save_path=save_path
    )
    wait_for_file(marker)

    child_marker = tmp_path / "child-started"
    for path in (save_path, save_path / "inner", save_path.parent):
        with pytest.raises(SavePathExistsError, match=running.id) as caught:
            manager.train(
                Blocking,
                marker=str(child_marker),
                trainer="subprocess",
                save_path=path,
                overwrite=True,
            )
        assert caught.value.path == str(path)

    other = make_manager()
    with pytest.raises(SavePathExistsError, match="is in use"):
        other.train(Echo, save_path=tmp_path / "models" / "." / "m")
    sibling = manager.train(Echo, trainer="subprocess", save_path=tmp_path / "m2")
    assert sibling.wait(timeout=WAIT) is TrainingStatus.COMPLETED

    running.cancel()
    # A canceled job never commits, so its path is free at once.
    after_cancel = manager.train(Echo, value="after", save_path=save_path)
    assert after_cancel.wait(timeout=WAIT) is TrainingStatus.COMPLETED
    release.write_text("go", encoding="utf-8")
    assert running.join(timeout=WAIT)
    assert not child_marker.exists()
    assert manager.load(str(save_path), cache=False).value == "after"


# Cancel and wait -------------------------------------------------------------------


@pytest.mark.parametrize("watch", ["event", "function"])
def test_thread_cancel_running(
    manager: ModelManager, tmp_path: Path, watch: str
) -> None:
    marker = tmp_path / "started"
    save_path = tmp_path / "m"
    future = manager.train(
        Blocking, marker=str(marker), watch=watch, save_path=save_path
    )
    wait_for_file(marker)
    assert future.status is TrainingStatus.RUNNING
    future.cancel()
    assert future.status is TrainingStatus.CANCELED
    assert future.join(timeout=WAIT)
    assert future.status is TrainingStatus.CANCELED
    with pytest.raises(TrainingError, match="was canceled"):
        future.load()
    assert not save_path.exists()
    assert siblings(tmp_path) == ["started"]


def test_thread_cancel_discards_late_result(
    manager: ModelManager, tmp_path: Path
) -> None:
    marker, release = tmp_path / "started", tmp_path / "release"
    save_path = tmp_path / "m"
    future = manager.train(
        Blocking,
        marker=str(marker),
        release=str(release),
        watch="none",
        save_path=save_path,
    )
    wait_for_file(marker)
    future.cancel()
    assert future.status is TrainingStatus.CANCELED
    release.write_text("go", encoding="utf-8")
    assert future.join(timeout=WAIT)
    assert future.status is TrainingStatus.CANCELED
    assert not save_path.exists()
    assert siblings(tmp_path) == ["release", "started"]


@pytest.mark.parametrize("ignore_sigterm", [False, True])
def test_subprocess_cancel_running(
    manager: ModelManager, tmp_path: Path, ignore_sigterm: bool
) -> None:
    marker = tmp_path / "started"
    models = tmp_path / "models"
    future = manager.train(
        Blocking,
        marker=str(marker),
        ignore_sigterm=ignore_sigterm,
        trainer="subprocess",
        save_path=models / "m",
    )
    pid = int(wait_for_file(marker))
    future.cancel()
    assert future.status is TrainingStatus.CANCELED
    # SIGTERM stops the child at once; one that ignores it is killed once
    # the grace period has passed.
    assert future.join(timeout=WAIT)
    assert process_gone(pid)
    assert future.status is TrainingStatus.CANCELED
    assert siblings(models) == []


@pytest.mark.parametrize("mode", MODES)
def test_cancel_after_completion_keeps_completed(
    manager: ModelManager, mode: str, tmp_path: Path
) -> None:
    future = manager.train(
        Echo, value=5, trainer=trainer_for(mode), save_path=tmp_path / "m"
    )
    future.wait(timeout=WAIT)
    future.cancel()
    assert future.status is TrainingStatus.COMPLETED
    assert future.load().value == 5
    assert (tmp_path / "m" / "config.yml").is_file()


@pytest.mark.parametrize("mode", MODES)
def test_wait_timeout_raises(manager: ModelManager, mode: str, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    future = manager.train(
        Blocking,
        marker=str(marker),
        trainer=trainer_for(mode),
        save_path=tmp_path / "m",
    )
    with pytest.raises(TimeoutError, match="still"):
        future.wait(timeout=0.05)
    with pytest.raises(TimeoutError):
        future.load(timeout=0.01)
    assert not future.status.is_terminal
    future.cancel()
    assert future.join(timeout=WAIT)


# Ids, lookup and retention -------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_retry_same_id_after_failure(
    manager: ModelManager, mode: str, tmp_path: Path
) -> None:
    trainer = trainer_for(mode)
    failed = manager.train(
        Failing, trainer=trainer, save_path=tmp_path / "a", training_id="nightly"
    )
    assert failed.wait(timeout=WAIT) is TrainingStatus.ERRORED
    retried = manager.train(
        Echo, value=9, trainer=trainer, save_path=tmp_path / "b", training_id="nightly"
    )
    assert retried.id == "nightly"
    assert retried.load(timeout=WAIT).value == 9
    assert manager.get_model_future("nightly") is retried


@pytest.mark.parametrize("mode", MODES)
def test_reuse_running_id_rejected(
    manager: ModelManager, mode: str, tmp_path: Path
) -> None:
    marker, release = tmp_path / "started", tmp_path / "release"
    running = manager.train(
        Blocking,
        marker=str(marker),
        release=str(release),
        trainer=trainer_for(mode),
        save_path=tmp_path / "a",
        training_id="busy",
    )
    wait_for_file(marker)
    for trainer in ("default", "subprocess"):
        with pytest.raises(TrainingIdInUseError, match="still RUNNING"):
            manager.train(
                Echo, trainer=trainer, save_path=tmp_path / "b", training_id="busy"
            )
    assert running.status is TrainingStatus.RUNNING
    release.write_text("go", encoding="utf-8")
    assert running.load(timeout=WAIT).value == "released"
    assert manager.get_model_future("busy") is running


def test_get_model_future_across_trainers(tmp_path: Path) -> None:
    manager = make_manager(
        alpha={"type": "LOCAL", "config": {}},
        beta={"type": "LOCAL", "config": {"use_subprocess": True}},
    )
    on_alpha = manager.train(Echo, value="a", trainer="alpha")
    on_beta = manager.train(Echo, value="b", trainer="beta", save_path=tmp_path / "b")
    assert on_alpha.id.startswith("alpha-")
    assert on_beta.id.startswith("beta-")
    assert manager.get_model_future(on_alpha.id) is on_alpha
    assert manager.get_model_future(on_beta.id) is on_beta
    assert manager.get_model_future(on_beta.id).load(timeout=WAIT).value == "b"
    with pytest.raises(TrainingNotFoundError) as caught:
        manager.get_model_future("alpha-" + "0" * 32)
    message = str(caught.value)
    assert "'alpha-00000000000000000000000000000000'" in message
    assert "'alpha'" in message
    assert "'beta'" in message


def test_get_model_future_unknown_id(manager: ModelManager) -> None:
    with pytest.raises(TrainingNotFoundError, match="No training with id 'nope'"):
        manager.get_model_future("nope")


def test_retention_forgets_finished_future(tmp_path: Path) -> None:
    manager = make_manager(
        brief={"type": "LOCAL", "config": {"retention_duration": "0s"}},
    )
    future = manager.train(Echo, trainer="brief", save_path=tmp_path / "kept")
    future.wait(timeout=WAIT)
    with pytest.raises(TrainingNotFoundError, match="'brief'"):
        manager.get_model_future(future.id)
    assert manager.get_trainer("brief").list_futures() == []  # type: ignore[attr-defined]
    assert (tmp_path / "kept" / "config.yml").is_file()


def test_retention_keeps_running_future(tmp_path: Path) -> None:
    manager = make_manager(
        brief={"type": "LOCAL", "config": {"retention_duration": "0s"}},
    )
    marker = tmp_path / "started"
    future = manager.train(Blocking, marker=str(marker), trainer="brief")
    wait_for_file(marker)
    assert manager.get_model_future(future.id) is future
    future.cancel()
    assert future.join(timeout=WAIT)


# Concurrency and model arguments --------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_twenty_trainings_at_once(
    manager: ModelManager, mode: str, tmp_path: Path
) -> None:
    futures = [
        manager.train(
            Echo, value=i, trainer=trainer_for(mode), save_path=tmp_path / f"m{i}"
        )
        for i in range(20)
    ]
    assert len({future.id for future in futures}) == 20
    values = [future.load(timeout=WAIT * 4).value for future in futures]
    assert values == list(range(20))
    assert siblings(tmp_path) == sorted(f"m{i}" for i in range(20))


def test_subprocess_model_arguments(manager: ModelManager, tmp_path: Path) -> None:
    base = Echo(1)
    others = [Echo(10), Echo(100)]
    named = {"x": Echo(1000)}
    future = manager.train(
        Combine,
        base,
        others=others,
        named=named,
        pair=(Echo(10000), 5),
        trainer="subprocess",
        save_path=tmp_path / "combined",
    )
    model = future.load(timeout=WAIT)
    assert isinstance(model, Combine)
    assert model.value == 11116


def test_subprocess_rejects_unpicklable_argument(
    manager: ModelManager, tmp_path: Path
) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        manager.train(
            Echo, value=lambda: 1, trainer="subprocess", save_path=tmp_path / "m"
        )
    assert siblings(tmp_path) == []


def test_subprocess_child_imports_stay_small(
    manager: ModelManager, tmp_path: Path
) -> None:
    future = manager.train(
        Echo, record_imports=True, trainer="subprocess", save_path=tmp_path / "m"
    )
    imported = set(future.load(timeout=WAIT).imported)
    assert "training_modules" in imported
    heavy = {
        "ray",
        "torch",
        "transformers",
        "s3fs",
        "fsspec",
        "sklearn",
        "numpy",
        "tqdm",
        "boto3",
        "caikit_mm.manager",
        "caikit_mm.model_management.local_trainer",
        "multiprocessing",
        "pytest",
    }
    assert imported & heavy == set()


def test_fork_start_method(tmp_path: Path) -> None:
    manager = make_manager(
        forked={
            "type": "LOCAL",
            "config": {"use_subprocess": True, "subprocess_start_method": "fork"},
        }
    )
    future = manager.train(
        Echo, value="forked", trainer="forked", save_path=tmp_path / "m"
    )
    assert future.load(timeout=WAIT).value == "forked"
    failed = manager.train(Failing, trainer="forked", save_path=tmp_path / "f")
    with pytest.raises(ValueError, match="planned failure"):
        failed.load(timeout=WAIT)


MAIN_SCRIPT = """
import sys
import caikit_mm
from caikit_mm import ModelManager, ModuleBase
from caikit_mm.modules import save_config


@caikit_mm.module(id="training-test-main-script")
class InMain(ModuleBase):
    def __init__(self, value):
        self.value = value

    @classmethod
    def train(cls, box):
        return cls(box.content * 2)

    def save(self, model_path):
        save_config(self, model_path, value=self.value)

    @classmethod
    def load(cls, model_path, module_config):
        return cls(module_config["value"])


class Box:
    def __init__(self, content):
        self.content = content


if __name__ == "__main__":
    manager = ModelManager(config={})
    future = manager.train(
        InMain, Box(21), trainer="subprocess", save_path=sys.argv[1]
    )
    print(future.load(timeout=60).value)
"""


def test_subprocess_module_defined_in_main_script(tmp_path: Path) -> None:
    script = tmp_path / "train_in_main.py"
    script.write_text(MAIN_SCRIPT, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "model")],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_subprocess_rejects_local_class(manager: ModelManager, tmp_path: Path) -> None:
    class Local(Echo):
        pass

    with pytest.raises(TypeError, match="cannot be imported by that name"):
        manager.train(Local, trainer="subprocess", save_path=tmp_path / "m")
    assert siblings(tmp_path) == []


# Save path checks before training -------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_save_path_under_file_rejected(
    manager: ModelManager, mode: str, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        manager.train(
            Echo, trainer=trainer_for(mode), save_path=tmp_path / "file" / "m"
        )


def test_make_temp_folder_error_names_save_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    final = tmp_path / "file" / "m"
    with pytest.raises(OSError) as caught:
        make_temp_folder(str(final))
    assert str(final) in str(caught.value)
    assert TEMP_MARKER not in str(caught.value)


def name_max(folder: Path) -> int:
    return os.pathconf(folder, "PC_NAME_MAX")


@pytest.mark.parametrize("mode", MODES)
def test_long_model_name_rejected(
    manager: ModelManager, mode: str, tmp_path: Path
) -> None:
    limit = name_max(tmp_path) - SIBLING_NAME_EXTRA
    for length in (limit + 1, name_max(tmp_path) + 45):
        with pytest.raises(ValueError, match=f"at most {limit} bytes"):
            manager.train(
                Echo,
                trainer=trainer_for(mode),
                save_path=tmp_path,
                model_name="n" * length,
            )
    assert siblings(tmp_path) == []
    future = manager.train(
        Echo,
        value=1,
        trainer=trainer_for(mode),
        save_path=tmp_path,
        model_name="n" * limit,
    )
    assert future.wait(WAIT) is TrainingStatus.COMPLETED
    assert siblings(tmp_path) == ["n" * limit]


def test_long_inner_folder_rejected(manager: ModelManager, tmp_path: Path) -> None:
    limit = name_max(tmp_path)
    with pytest.raises(ValueError, match=f"at most {limit} bytes"):
        manager.train(Echo, save_path=tmp_path / ("d" * (limit + 1)) / "m")


@pytest.mark.parametrize("model_name", ["a/b", "a\x00b", ".", "..", ""])
def test_bad_model_name_rejected(
    manager: ModelManager, tmp_path: Path, model_name: str
) -> None:
    with pytest.raises(ValueError, match="single folder name"):
        manager.train(Echo, save_path=tmp_path, model_name=model_name)


# Argument types -----------------------------------------------------------------


@pytest.mark.parametrize("training_id", [5, None, b"id"])
def test_get_model_future_rejects_type(manager: ModelManager, training_id: Any) -> None:
    with pytest.raises(
        TypeError, match=f"training_id must be a str, got {type(training_id).__name__}"
    ):
        manager.get_model_future(training_id)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"save_path": 123}, "save_path must be a str or os.PathLike path"),
        ({"save_path": b"/tmp/x"}, "save_path must be a str or os.PathLike path"),
        ({"wait": "no"}, "wait must be a bool, got str 'no'"),
        ({"overwrite": "no"}, "overwrite must be a bool, got str 'no'"),
        ({"save_with_id": 1}, "save_with_id must be a bool, got int 1"),
        ({"training_id": 7}, "training_id must be a str or None, got int 7"),
    ],
)
def test_train_rejects_argument_type(
    manager: ModelManager, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        manager.train(Echo, **kwargs)


# Cancel and exit --------------------------------------------------------------

CANCEL_AND_EXIT = """
import sys, time
from pathlib import Path
from caikit_mm import ModelManager
from training_modules import Blocking

marker, save_path = sys.argv[1], sys.argv[2]
manager = ModelManager(config={"model_management": {"trainers": {
    "default": {"type": "LOCAL", "config": {
        "use_subprocess": True, "cancel_grace_period": "3s"}}}}})
future = manager.train(
    Blocking, marker=marker, watch="none", ignore_sigterm=True, save_path=save_path
)
while not Path(marker).exists():
    time.sleep(0.05)
future.cancel()
print(future.wait(10).value)
"""


def test_subprocess_cancel_then_exit_leaves_nothing(tmp_path: Path) -> None:
    marker, save_path = tmp_path / "started", tmp_path / "out" / "m"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    result = subprocess.run(
        [sys.executable, "-c", CANCEL_AND_EXIT, str(marker), str(save_path)],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "CANCELED"
    assert siblings(tmp_path / "out") == []
    assert process_gone(int(marker.read_text(encoding="utf-8")))
