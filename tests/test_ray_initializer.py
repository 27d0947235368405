"""The RAY initializer: models hosted in Ray actors on a local Ray instance."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from ray_modules import LoadFailure, Scaler, save_broken, save_scaler
from ray_support import RUNTIME_ENV

from caikit_mm import ModelManager
from caikit_mm.errors import RemoteModelError
from caikit_mm.ray import RemoteModel

WAIT = 120.0


def ray_config(**initializer: Any) -> dict[str, Any]:
    config = {"num_cpus": 0, "runtime_env": RUNTIME_ENV, **initializer}
    return {
        "model_management": {"initializers": {"ray": {"type": "RAY", "config": config}}}
    }


@pytest.fixture
def manager(ray_local: Any) -> ModelManager:
    return ModelManager(ray_config())


def is_alive(ray: Any, model: RemoteModel) -> bool:
    """Tell whether the actor answers a call now."""
    try:
        ray.get(model.actor.describe.remote(), timeout=WAIT)
    except ray.exceptions.RayActorError:
        return False
    return True


def wait_until_dead(ray: Any, model: RemoteModel) -> bool:
    """Wait until calls to the actor fail; ``ray.kill`` takes effect
    asynchronously, so a call made just after it may still run."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if not is_alive(ray, model):
            return True
        time.sleep(0.05)
    return False


def test_actor_answers_run(
    manager: ModelManager, ray_local: Any, tmp_path: Path
) -> None:
    path = save_scaler(tmp_path / "scaler", 3.0)
    model = manager.load(path, initializer="ray")
    assert isinstance(model, RemoteModel)
    assert model.run([1.0, 2.0]) == [3.0, 6.0]
    assert model.MODULE_ID == Scaler.MODULE_ID
    assert model.MODULE_VERSION == "1.2.0"
    # It runs in the actor's process, and reports where.
    assert model.where() == model.location["pid"]
    assert model.location["pid"] != os.getpid()
    nodes = {node["NodeID"]: node["NodeManagerAddress"] for node in ray_local.nodes()}
    assert nodes[model.location["node_id"]] == model.location["node_ip"]
    assert "in Ray actor" in repr(model)
    assert manager.load(path, initializer="ray") is model


def test_method_error_keeps_type(manager: ModelManager, tmp_path: Path) -> None:
    model = manager.load(save_scaler(tmp_path / "s", 1.0), initializer="ray")
    with pytest.raises(KeyError, match="no such column"):
        model.fail("no such column")
    with pytest.raises(
        AttributeError, match="methods: fail, module_config, run, save, where"
    ):
        model.predict_proba  # noqa: B018


def test_unload_kills_actor(
    manager: ModelManager, ray_local: Any, tmp_path: Path
) -> None:
    path = save_scaler(tmp_path / "s", 1.0)
    model = manager.load(path, initializer="ray")
    assert is_alive(ray_local, model)
    assert manager.unload(path, initializer="ray")
    assert wait_until_dead(ray_local, model)
    with pytest.raises(RemoteModelError, match="was unloaded"):
        model.run([1.0])


def test_actor_killed_outside(
    manager: ModelManager, ray_local: Any, tmp_path: Path
) -> None:
    model = manager.load(save_scaler(tmp_path / "s", 1.0), initializer="ray")
    ray_local.kill(model.actor, no_restart=True)
    with pytest.raises(RemoteModelError) as caught:
        model.run([1.0])
    assert "actor is dead or unreachable" in str(caught.value)
    assert "load it again" in str(caught.value)
    assert isinstance(caught.value.__cause__, ray_local.exceptions.RayActorError)


def test_load_failure_raised_once(
    manager: ModelManager, ray_local: Any, tmp_path: Path
) -> None:
    attempts = tmp_path / "attempts"
    path = save_broken(tmp_path / "broken", attempts)
    with pytest.raises(LoadFailure, match="are corrupt"):
        manager.load(path, initializer="ray")
    assert len(attempts.read_text(encoding="utf-8").splitlines()) == 1
    assert manager.loaded_models() == []


def test_unknown_module_in_actor(manager: ModelManager, tmp_path: Path) -> None:
    from caikit_mm.errors import ModuleNotRegisteredError
    from caikit_mm.modules import ModuleConfig

    folder = tmp_path / "unknown"
    folder.mkdir()
    ModuleConfig({"module_id": "no-library-has-this"}).save(str(folder))
    with pytest.raises(ModuleNotRegisteredError, match="no-library-has-this"):
        manager.load(str(folder), initializer="ray")


def test_managers_share_named_actor(ray_local: Any, tmp_path: Path) -> None:
    config = ray_config(actor_name="shared-{model_key}", namespace="caikit_mm_test")
    first, second = ModelManager(config), ModelManager(config)
    path = save_scaler(tmp_path / "s", 5.0)
    one = first.load(path, initializer="ray")
    two = second.load(path, initializer="ray")
    assert one is not two
    assert one.location == two.location
    assert one.location["actor_name"].startswith("shared-")
    assert two.run([1.0]) == [5.0]
    # The first unload leaves the actor to the other holder; the last kills it.
    assert first.unload(path, initializer="ray")
    assert is_alive(ray_local, two)
    assert two.run([2.0]) == [10.0]
    assert second.unload(path, initializer="ray")
    assert wait_until_dead(ray_local, two)


def test_describe_without_connecting(tmp_path: Path) -> None:
    from caikit_mm.modules import ModuleConfig

    manager = ModelManager(ray_config(actor_name="m-{model_name}", num_cpus=0.5))
    folder = save_scaler(tmp_path / "scaler", 1.0)
    described = manager.get_initializer("ray").describe(ModuleConfig.load(folder))
    assert described["actor_name"] == "m-scaler"
    assert described["resources"]["num_cpus"] == 0.5
    assert described["runtime_env"] == ["env_vars"]
