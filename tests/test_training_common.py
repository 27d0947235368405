"""Shared training pieces: ids, save paths, durations, atomic commits, job tables,
the base future's status machine and the LOCAL trainer's config validation."""

from __future__ import annotations

import datetime
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from caikit_mm import (
    ConfigError,
    ModelManager,
    ModuleBase,
    SavePathExistsError,
    TrainingError,
    TrainingIdInUseError,
)
from caikit_mm.model_management._training_common import (
    TrainingJobs,
    build_save_path,
    check_save_path,
    check_training_id,
    commit_folder,
    make_temp_folder,
    new_training_id,
    parse_duration,
    trainer_name_from_id,
)
from caikit_mm.model_management.training import BaseModelFuture, TrainingStatus

WAIT = 30  # seconds; only a guard against a hang


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1d12h3m0.5s", 86400 + 12 * 3600 + 180 + 0.5),
        ("7d", 7 * 86400),
        ("90s", 90),
        ("1.5m", 90),
        ("250ms", 0.25),
        ("2h30m", 9000),
        ("0", 0),
        ("0s", 0),
        (".5s", 0.5),
        (" 3 ", 3),
        (12, 12),
        (0.25, 0.25),
    ],
)
def test_parse_duration_accepts(text: Any, seconds: float) -> None:
    assert parse_duration(text) == datetime.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text", ["", "3x", "1s1d", "1d1d", "-1", -5, "h", "1 d", True, None, [1], "nan"]
)
def test_parse_duration_rejects(text: Any) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_training_id_names_its_trainer() -> None:
    training_id = new_training_id("my-trainer")
    assert training_id.startswith("my-trainer-")
    assert trainer_name_from_id(training_id) == "my-trainer"
    assert new_training_id("my-trainer") != training_id


@pytest.mark.parametrize(
    "training_id", ["nightly", "a-b-c", "x-" + "0" * 31, "-" + "a" * 32, "A" * 40]
)
def test_trainer_name_from_caller_id(training_id: str) -> None:
    assert trainer_name_from_id(training_id) is None


@pytest.mark.parametrize(
    "training_id", ["", ".", "..", "a/b", "a\\b", "a\0b", "x" * 201, 7]
)
def test_check_training_id_rejects(training_id: Any) -> None:
    with pytest.raises(ValueError, match="training_id"):
        check_training_id(training_id)


def test_build_save_path_rules(tmp_path: Path) -> None:
    base = str(tmp_path / "models")
    assert build_save_path(base, "job-1") == base
    assert build_save_path(base, "job-1", save_with_id=True) == f"{base}/job-1"
    assert build_save_path(base, "job-1", model_name="iris") == f"{base}/iris"
    assert (
        build_save_path(base, "job-1", save_with_id=True, model_name="iris")
        == f"{base}/job-1/iris"
    )
    assert build_save_path(None, "job-1") is None


def test_build_save_path_resolves_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert build_save_path("out", "job") == str(tmp_path / "out")


@pytest.mark.parametrize(
    ("save_path", "kwargs", "match"),
    [
        (None, {"save_with_id": True}, "save_path is None"),
        (None, {"model_name": "m"}, "save_path is None"),
        ("s3://bucket/m", {}, "URL"),
        ("", {}, "empty"),
        ("/tmp/x", {"model_name": "a/b"}, "single folder name"),
        ("/tmp/x", {"model_name": ".."}, "single folder name"),
    ],
)
def test_build_save_path_rejects(
    save_path: str | None, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        build_save_path(save_path, "job", **kwargs)


def test_check_save_path_rules(tmp_path: Path) -> None:
    check_save_path(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    check_save_path(str(tmp_path / "empty"))
    full = tmp_path / "full"
    full.mkdir()
    (full / "config.yml").write_text("module_id: x\n", encoding="utf-8")
    with pytest.raises(SavePathExistsError, match="already exists") as caught:
        check_save_path(str(full))
    assert caught.value.path == str(full)
    assert isinstance(caught.value, FileExistsError)
    check_save_path(str(full), overwrite=True)
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(SavePathExistsError, match="not a folder"):
        check_save_path(str(tmp_path / "file"), overwrite=True)


def test_commit_folder_renames_into_place(tmp_path: Path) -> None:
    final = tmp_path / "deep" / "model"
    temp = make_temp_folder(str(final))
    assert Path(temp).parent == final.parent
    assert Path(temp).name.startswith(".model.tmp-")
    Path(temp, "config.yml").write_text("module_id: new\n", encoding="utf-8")
    commit_folder(temp, str(final))
    assert (final / "config.yml").read_text(encoding="utf-8") == "module_id: new\n"
    assert sorted(p.name for p in final.parent.iterdir()) == ["model"]


def test_commit_folder_refuses_filled_path(tmp_path: Path) -> None:
    final = tmp_path / "model"
    temp = make_temp_folder(str(final))
    final.mkdir()
    (final / "config.yml").write_text("module_id: old\n", encoding="utf-8")
    with pytest.raises(SavePathExistsError, match="created by someone else"):
        commit_folder(temp, str(final))
    assert (final / "config.yml").read_text(encoding="utf-8") == "module_id: old\n"
    assert Path(temp).is_dir()


def test_commit_folder_overwrites(tmp_path: Path) -> None:
    final = tmp_path / "model"
    final.mkdir()
    (final / "old.bin").write_text("old", encoding="utf-8")
    temp = make_temp_folder(str(final))
    Path(temp, "new.bin").write_text("new", encoding="utf-8")
    commit_folder(temp, str(final), overwrite=True)
    assert sorted(p.name for p in final.iterdir()) == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


class ManualFuture(BaseModelFuture):
    """A future driven by the test itself, as a trainer type would drive it."""

    def __init__(
        self, training_id: str = "manual", save_path: str | None = None
    ) -> None:
        super().__init__(training_id, save_path, "manual-trainer")
        self.canceled_worker = threading.Event()

    def _cancel_job(self) -> None:
        self.canceled_worker.set()

    def _load_model(self) -> ModuleBase:
        return ModuleBase()


def test_base_future_terminal_status_is_final() -> None:
    future = ManualFuture()
    assert future.status is TrainingStatus.QUEUED
    assert future._mark_running()
    assert future.info().start_time is not None
    assert future._complete()
    future.cancel()
    assert future.status is TrainingStatus.COMPLETED
    assert not future.canceled_worker.is_set()
    assert not future._fail(RuntimeError("late"))
    assert future.info().errors == []
    assert isinstance(future.load(), ModuleBase)


def test_base_future_cancel_wins_over_late_result() -> None:
    future = ManualFuture()
    future._mark_running()
    future.cancel()
    assert future.status is TrainingStatus.CANCELED
    assert future.cancel_event.is_set()
    assert future.canceled_worker.is_set()
    committed = []
    assert not future._complete(lambda: committed.append(True))
    assert committed == []
    assert not future._mark_running()
    with pytest.raises(TrainingError, match="was canceled"):
        future.load()


def test_base_future_commit_error_errors_job() -> None:
    future = ManualFuture()

    def commit() -> None:
        raise OSError("rename failed")

    assert not future._complete(commit)
    assert future.status is TrainingStatus.ERRORED
    assert future.info().errors == ["OSError: rename failed"]
    with pytest.raises(OSError, match="rename failed"):
        future.load()


def test_base_future_wait_timeout() -> None:
    future = ManualFuture()
    with pytest.raises(TimeoutError, match="still QUEUED"):
        future.wait(timeout=0.01)
    assert not future.done()


def test_base_future_callbacks_and_exception() -> None:
    future = ManualFuture()
    seen: list[TrainingStatus] = []
    future.add_done_callback(lambda f: seen.append(f.status))
    future.add_done_callback(lambda f: 1 / 0)  # logged and ignored
    error = KeyError("missing column")
    future._fail(error)
    assert seen == [TrainingStatus.ERRORED]
    assert future.exception(timeout=WAIT) is error
    future.add_done_callback(lambda f: seen.append(f.status))
    assert seen == [TrainingStatus.ERRORED, TrainingStatus.ERRORED]
    assert future.done()
    info = future.info()
    assert info.completion_time is not None
    assert info.completion_time >= info.submission_time


def test_jobs_reject_live_id_and_replace_terminal() -> None:
    jobs: TrainingJobs[ManualFuture] = TrainingJobs("t", None)
    first = ManualFuture("job")
    jobs.add(first)
    with pytest.raises(TrainingIdInUseError, match="still QUEUED"):
        jobs.add(ManualFuture("job"))
    assert jobs.get("job") is first
    first._fail(RuntimeError("x"))
    second = ManualFuture("job")
    jobs.add(second)
    assert jobs.get("job") is second
    assert list(jobs) == [second]


def test_jobs_claim_save_path_until_terminal(tmp_path: Path) -> None:
    jobs: TrainingJobs[ManualFuture] = TrainingJobs("t", None)
    other: TrainingJobs[ManualFuture] = TrainingJobs("u", None)
    first = ManualFuture("first", str(tmp_path / "m"))
    jobs.add(first)
    (tmp_path / "link").symlink_to(tmp_path)
    for path in ["m", "m/inner", ".", "link/m"]:
        with pytest.raises(SavePathExistsError, match="'first', still QUEUED"):
            other.add(ManualFuture(f"second-{path}", str(tmp_path / path)))
        with pytest.raises(SavePathExistsError, match="is in use"):
            check_save_path(str(tmp_path / path), overwrite=True)
    beside = ManualFuture("beside", str(tmp_path / "m2"))
    other.add(beside)
    other.add(ManualFuture("unsaved"))
    first._complete()
    second = ManualFuture("second", str(tmp_path / "m"))
    other.add(second)
    second.cancel()
    check_save_path(str(tmp_path / "m"))
    beside.cancel()


def test_jobs_same_id_follows_one_job(tmp_path: Path) -> None:
    first_jobs: TrainingJobs[ManualFuture] = TrainingJobs("t", None)
    second_jobs: TrainingJobs[ManualFuture] = TrainingJobs("t", None)
    first = ManualFuture("shared", str(tmp_path / "m"))
    first_jobs.add(first)
    # A second future of the same training id follows the same job.
    follower = ManualFuture("shared", str(tmp_path / "m"))
    second_jobs.add(follower)
    # Starting a new job is still rejected while either future runs.
    first.cancel()
    with pytest.raises(SavePathExistsError, match="'shared', still QUEUED"):
        check_save_path(str(tmp_path / "m"))
    follower.cancel()
    check_save_path(str(tmp_path / "m"))


def test_jobs_claim_urls_as_text() -> None:
    jobs: TrainingJobs[ManualFuture] = TrainingJobs("t", None)
    jobs.add(ManualFuture("first", "s3://bucket/models/m/"))
    with pytest.raises(SavePathExistsError, match="'first'"):
        jobs.add(ManualFuture("nested", "s3://bucket/models/m/inner"))
    jobs.add(ManualFuture("prefix-only", "s3://bucket/models/m2"))
    jobs.add(ManualFuture("other-bucket", "s3://other/models/m"))
    for future in jobs:
        future.cancel()
    jobs.add(ManualFuture("nested", "s3://bucket/models/m/inner"))
    jobs.get("nested").cancel()  # type: ignore[union-attr]


def test_jobs_forget_after_retention() -> None:
    kept: TrainingJobs[ManualFuture] = TrainingJobs("t", datetime.timedelta(days=1))
    gone: TrainingJobs[ManualFuture] = TrainingJobs("t", datetime.timedelta(0))
    for jobs in (kept, gone):
        running, finished = ManualFuture("running"), ManualFuture("finished")
        jobs.add(running)
        jobs.add(finished)
        finished._complete()
    assert kept.get("finished") is not None
    assert gone.get("finished") is None
    assert [f.id for f in gone] == ["running"]
    assert len(gone) == 1


def test_jobs_retention_spares_replacement() -> None:
    retention = datetime.timedelta(seconds=0.05)
    jobs: TrainingJobs[ManualFuture] = TrainingJobs("t", retention)
    first = ManualFuture("job")
    jobs.add(first)
    first._fail(RuntimeError("x"))
    second = ManualFuture("job")
    jobs.add(second)
    # The first job's retention runs out while the second one is listed.
    time.sleep(retention.total_seconds() * 2)
    jobs.purge()
    assert jobs.get("job") is second
    second._complete()
    time.sleep(retention.total_seconds() * 2)
    assert jobs.get("job") is None
    assert len(jobs) == 0


def trainer_config(**config: Any) -> dict[str, Any]:
    return {
        "model_management": {
            "trainers": {"default": {"type": "LOCAL", "config": config}}
        }
    }


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"subprocess_start_method": "threads"}, "subprocess_start_method"),
        ({"retention_duration": "1 week"}, "retention_duration"),
        ({"cancel_grace_period": "-1"}, "cancel_grace_period"),
        ({"use_subprocess": "yes"}, "use_subprocess"),
        ({"use_subproces": True}, "use_subproces"),
    ],
)
def test_local_trainer_config_rejected(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ModelManager(config=trainer_config(**config))
    assert caught.value.key_path == f"model_management.trainers.default.config.{key}"


def test_local_trainer_config_read() -> None:
    manager = ModelManager(
        config=trainer_config(
            use_subprocess=True,
            subprocess_start_method="forkserver",
            retention_duration="1d12h",
            cancel_grace_period="250ms",
        )
    )
    trainer: Any = manager.get_trainer()
    assert trainer.use_subprocess is True
    assert trainer.start_method == "forkserver"
    assert trainer.retention == datetime.timedelta(hours=36)
    assert trainer.grace_period == 0.25


def test_default_config_has_thread_and_subprocess_trainers() -> None:
    manager = ModelManager(config={})
    default: Any = manager.get_trainer()
    subprocess: Any = manager.get_trainer("subprocess")
    assert default.use_subprocess is False
    assert subprocess.use_subprocess is True
    assert subprocess.start_method == "spawn"
