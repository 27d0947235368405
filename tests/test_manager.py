"""ModelManager: named instances, the loaded-model cache and concurrency."""

from __future__ import annotations

import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import caikit_mm
from caikit_mm import (
    ModelFinder,
    ModelInitializer,
    ModelManager,
    ModelNotFoundError,
    ModuleBase,
    ModuleConfig,
    UnknownInstanceError,
)

WAIT = 30  # seconds; only a guard against a hang, never a measured limit


class Gate:
    """Lets a test hold module loads open until it releases them."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()


GATES: dict[str, Gate] = {}
LOADS: dict[str, int] = {}
FAILURES: dict[str, int] = {}
LOCK = threading.Lock()


@caikit_mm.module(id="manager-test-gated")
class Gated(ModuleBase):
    @classmethod
    def load(cls, model_path: str, module_config: ModuleConfig, **kwargs: Any) -> Gated:
        key = module_config.key
        with LOCK:
            LOADS[key] = LOADS.get(key, 0) + 1
            failures = FAILURES.get(key, 0)
            if failures:
                FAILURES[key] = failures - 1
        gate = GATES.get(key)
        if gate is not None:
            gate.entered.set()
            assert gate.release.wait(WAIT), "test never released the gate"
        if failures:
            raise RuntimeError(f"planned failure of {key}")
        model = cls()
        model.kwargs = kwargs  # type: ignore[attr-defined]
        return model


def make_model(tmp_path: Path, key: str) -> Path:
    folder = tmp_path / key
    folder.mkdir()
    (folder / "config.yml").write_text(
        f"module_id: manager-test-gated\nkey: {key}\n", encoding="utf-8"
    )
    return folder


@pytest.fixture
def manager() -> ModelManager:
    return ModelManager(
        {"model_management": {"finders": {"second": {"type": "LOCAL"}}}}
    )


def test_second_load_returns_same_object(tmp_path: Path, manager: ModelManager) -> None:
    folder = make_model(tmp_path, "same")
    first = manager.load(str(folder))
    assert manager.load(str(folder)) is first
    assert manager.load(folder) is first
    assert manager.load(f"{folder}/") is first
    assert LOADS["same"] == 1


def test_relative_and_absolute_share_model(
    tmp_path: Path, manager: ModelManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_model(tmp_path, "relative")
    monkeypatch.chdir(tmp_path)
    assert manager.load("relative") is manager.load(str(folder))
    assert LOADS["relative"] == 1


def test_symlink_shares_model(tmp_path: Path, manager: ModelManager) -> None:
    folder = make_model(tmp_path, "linked")
    (tmp_path / "link").symlink_to(folder)
    assert manager.load(str(tmp_path / "link")) is manager.load(str(folder))
    assert LOADS["linked"] == 1


def test_identity_includes_finder_and_kwargs(
    tmp_path: Path, manager: ModelManager
) -> None:
    folder = make_model(tmp_path, "identity")
    base = manager.load(folder)
    assert manager.load(folder, finder="second") is not base
    with_kwargs = manager.load(folder, device="cpu")
    assert with_kwargs is not base
    assert with_kwargs.kwargs == {"device": "cpu"}
    assert manager.load(folder, device="cpu") is with_kwargs
    assert LOADS["identity"] == 3


def test_unhashable_kwargs_skip_cache(tmp_path: Path, manager: ModelManager) -> None:
    folder = make_model(tmp_path, "unhashable")
    first = manager.load(str(folder), options={"beam": 4})
    second = manager.load(str(folder), options={"beam": 4})
    assert first is not second
    assert first.kwargs == {"options": {"beam": 4}}
    assert LOADS["unhashable"] == 2


def test_cache_false_loads_new_copy(tmp_path: Path, manager: ModelManager) -> None:
    folder = make_model(tmp_path, "nocache")
    cached = manager.load(folder)
    fresh = manager.load(folder, cache=False)
    assert fresh is not cached
    assert manager.load(folder) is cached
    assert LOADS["nocache"] == 2


class Releasing(ModelInitializer):
    """An initializer that records each model it is asked to release."""

    name = "TEST_RELEASING"

    def __init__(self, config: Any, instance_name: str) -> None:
        super().__init__(config, instance_name)
        self.released: list[Any] = []

    def init(self, module_config: ModuleConfig, **kwargs: Any) -> Any:
        return object()

    def release(self, model: Any) -> None:
        self.released.append(model)


def test_unload_drops_and_releases(tmp_path: Path) -> None:
    manager = ModelManager()
    initializer = Releasing({}, "releasing")
    released = initializer.released
    folder = make_model(tmp_path, "unload")
    first = manager.load(str(folder), initializer=initializer)
    assert manager.unload(folder, initializer=initializer) is True
    assert released == [first]
    assert manager.load(str(folder), initializer=initializer) is not first
    assert manager.unload(tmp_path / "never-loaded") is False


def test_unload_matches_any_initializer(tmp_path: Path) -> None:
    manager = ModelManager()
    initializer = Releasing({}, "releasing")
    released = initializer.released
    folder = make_model(tmp_path, "unload-any")
    hosted = manager.load(folder, initializer=initializer)
    local = manager.load(folder)
    other = manager.load(make_model(tmp_path, "unload-kept"))
    assert manager.unload(str(folder) + "/") is True
    assert released == [hosted]
    assert manager.loaded_models() == [other]
    assert manager.load(folder) is not local


def test_unload_filters_by_kwargs(tmp_path: Path, manager: ModelManager) -> None:
    folder = make_model(tmp_path, "unload-kwargs")
    plain = manager.load(folder)
    manager.load(folder, flavor="a")
    assert manager.unload(folder, flavor="a") is True
    assert manager.loaded_models() == [plain]


def test_concurrent_loads_share_one_initialization(
    tmp_path: Path, manager: ModelManager
) -> None:
    folder = make_model(tmp_path, "shared")
    gate = GATES["shared"] = Gate()
    gate.release.clear()
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(manager.load, str(folder)) for _ in range(8)]
        assert gate.entered.wait(WAIT)
        gate.release.set()
        models = [f.result(WAIT) for f in futures]
    assert all(m is models[0] for m in models)
    assert LOADS["shared"] == 1


def test_different_models_do_not_wait(tmp_path: Path, manager: ModelManager) -> None:
    slow = make_model(tmp_path, "slow")
    fast = make_model(tmp_path, "fast")
    gate = GATES["slow"] = Gate()
    gate.release.clear()
    with ThreadPoolExecutor(2) as pool:
        slow_future = pool.submit(manager.load, slow)
        assert gate.entered.wait(WAIT)
        # The slow load holds its gate until the fast one has finished.
        assert manager.load(fast) is not None
        gate.release.set()
        assert slow_future.result(WAIT) is not None


def test_failed_load_is_not_kept(tmp_path: Path, manager: ModelManager) -> None:
    folder = make_model(tmp_path, "flaky")
    FAILURES["flaky"] = 1
    with pytest.raises(RuntimeError, match="planned failure of flaky"):
        manager.load(folder)
    assert manager.load(folder) is not None
    assert LOADS["flaky"] == 2


def wait_for_waiters(count: int) -> None:
    """Block until ``count`` threads wait on another thread's load of a model."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        waiting = 0
        for frame in sys._current_frames().values():
            code = frame.f_code
            if code.co_name == "wait" and code.co_filename.endswith("manager.py"):
                waiting += 1
        if waiting >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{count} threads did not start waiting in {WAIT} s")


def test_waiters_see_owner_failure(tmp_path: Path, manager: ModelManager) -> None:
    folder = make_model(tmp_path, "fail-shared")
    FAILURES["fail-shared"] = 1
    gate = GATES["fail-shared"] = Gate()
    gate.release.clear()
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(manager.load, folder) for _ in range(4)]
        assert gate.entered.wait(WAIT)
        # A thread that arrives after the failure would start a load of its own.
        wait_for_waiters(3)
        gate.release.set()
        errors = [f.exception(WAIT) for f in futures]
    assert all(isinstance(e, RuntimeError) for e in errors)
    assert LOADS["fail-shared"] == 1


def test_unknown_instance_names_configured(manager: ModelManager) -> None:
    with pytest.raises(UnknownInstanceError) as info:
        manager.load("/anything", finder="s4")
    assert "'s4'" in str(info.value)
    configured = str(info.value).split("configured finders: ")[1].split(".")[0]
    assert "default" in configured.split(", ")
    assert "second" in configured.split(", ")
    with pytest.raises(UnknownInstanceError, match="initializer named 'nope'"):
        manager.load("/anything", initializer="nope")


def test_wrong_instance_type_is_rejected(manager: ModelManager) -> None:
    with pytest.raises(TypeError, match="finder must be an instance name"):
        manager.load("/anything", finder=3)  # type: ignore[arg-type]


def test_instances_built_once_across_threads(manager: ModelManager) -> None:
    with ThreadPoolExecutor(8) as pool:
        finders = list(pool.map(lambda _: manager.get_finder("second"), range(64)))
    assert all(f is finders[0] for f in finders)
    assert finders[0].instance_name == "second"
    assert manager.get_finder() is manager.get_finder("default")


def test_finder_instance_can_be_passed(tmp_path: Path, manager: ModelManager) -> None:
    class Fixed(ModelFinder):
        name = "TEST_FIXED"

        def find_model(self, model_path: Any, **kwargs: Any) -> ModuleConfig:
            if model_path != "fixed":
                raise ModelNotFoundError(f"only 'fixed', not {model_path!r}")
            return ModuleConfig.load(make_model(tmp_path, "fixed"))

    model = manager.load("fixed", finder=Fixed({}, "fixed-finder"))
    assert isinstance(model, Gated)


def test_load_logs_one_info_line(
    tmp_path: Path, manager: ModelManager, caplog: pytest.LogCaptureFixture
) -> None:
    folder = make_model(tmp_path, "logged")
    with caplog.at_level(logging.INFO, logger="caikit_mm"):
        manager.load(folder)
        manager.load(folder)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == 1
    assert str(folder) in lines[0]
    assert "manager-test-gated" in lines[0]
    assert "finder 'default'" in lines[0]
    assert "initializer 'default'" in lines[0]
    assert " ms" in lines[0]


def test_find_does_not_initialize(tmp_path: Path, manager: ModelManager) -> None:
    folder = make_model(tmp_path, "found-only")
    config = manager.find(folder)
    assert config.module_id == "manager-test-gated"
    assert "found-only" not in LOADS
    model = manager.initialize(config)
    assert isinstance(model, Gated)
    assert LOADS["found-only"] == 1
