"""RAY initializer loads whose actor Ray cannot place: warnings and errors."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ray_modules import save_scaler
from ray_support import RUNTIME_ENV

from caikit_mm import ModelManager
from caikit_mm.errors import RemoteModelError

# A custom resource that no node of the test cluster has.
ABSENT_RESOURCE = "caikit_mm_test_absent"
WAIT = 120.0
INITIALIZER_LOGGER = "caikit_mm.ray.initializer"


def ray_config(**initializer: Any) -> dict[str, Any]:
    config = {"num_cpus": 0, "runtime_env": RUNTIME_ENV, **initializer}
    return {
        "model_management": {"initializers": {"ray": {"type": "RAY", "config": config}}}
    }


def pending_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == INITIALIZER_LOGGER and record.levelno == logging.WARNING
    ]


def actor_exists(ray: Any, name: str, namespace: str) -> bool:
    try:
        ray.get_actor(name, namespace=namespace)
    except ValueError:
        return False
    return True


def wait_until_gone(ray: Any, name: str, namespace: str) -> bool:
    """Wait until no actor has ``name``; ``ray.kill`` takes effect asynchronously."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if not actor_exists(ray, name, namespace):
            return True
        time.sleep(0.05)
    return False


def test_absent_resource_warns_then_fails(
    ray_local: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    namespace = "caikit_mm_placement"
    config = ray_config(
        resources={ABSENT_RESOURCE: 1},
        load_timeout="2s",
        actor_name="never-{model_name}",
        namespace=namespace,
    )
    path = save_scaler(tmp_path / "unplaceable", 1.0)
    manager = ModelManager(config)
    caplog.set_level(logging.WARNING, logger=INITIALIZER_LOGGER)

    with pytest.raises(RemoteModelError) as caught:
        manager.load(path, initializer="ray")

    message = str(caught.value)
    assert "never scheduled the actor within load_timeout (2 s)" in message
    assert f"It requests {ABSENT_RESOURCE} 1." in message
    assert f"{ABSENT_RESOURCE} 0 of 0" in message
    assert f"No live node has {ABSENT_RESOURCE} in that amount" in message
    assert "PENDING_CREATION" in message
    assert path in message

    # One warning before the timeout, with the model, the request and the limit.
    warnings = pending_warnings(caplog)
    assert len(warnings) == 1
    assert path in warnings[0]
    assert f"It requests {ABSENT_RESOURCE} 1." in warnings[0]
    assert "load_timeout (2 s)" in warnings[0]

    assert wait_until_gone(ray_local, "never-unplaceable", namespace)
    assert manager.loaded_models() == []


def test_busy_cluster_names_module_and_cpus(
    ray_local: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from caikit_mm.modules import ModuleConfig

    cpus = ray_local.cluster_resources()["CPU"]
    holder = ModelManager(ray_config(num_cpus=cpus))
    held_path = save_scaler(tmp_path / "holds-cpus", 1.0)
    holder.load(held_path, initializer="ray")
    # Work left by earlier tests can delay this load and log its own warning.
    caplog.clear()

    unknown = tmp_path / "unknown"
    unknown.mkdir()
    ModuleConfig({"module_id": "no-library-has-this"}).save(str(unknown))
    waiting = ModelManager(ray_config(num_cpus=1, load_timeout="2s"))
    caplog.set_level(logging.WARNING, logger=INITIALIZER_LOGGER)
    try:
        with pytest.raises(RemoteModelError) as caught:
            waiting.load(str(unknown), initializer="ray")
    finally:
        assert holder.unload(held_path, initializer="ray")

    message = str(caught.value)
    assert "never scheduled the actor within load_timeout (2 s)" in message
    assert f"CPU 0 of {cpus:g}" in message
    assert "Other tasks and actors hold the resources" in message
    assert "'no-library-has-this' is not registered in this process" in message
    warnings = pending_warnings(caplog)
    assert len(warnings) == 1
    assert "'no-library-has-this'" in warnings[0]
    assert "It requests CPU 1." in warnings[0]


def test_pending_actor_starts_when_freed(
    ray_local: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cpus = ray_local.cluster_resources()["CPU"]
    holder = ModelManager(ray_config(num_cpus=cpus))
    held_path = save_scaler(tmp_path / "holds-cpus", 1.0)
    holder.load(held_path, initializer="ray")
    # Work left by earlier tests can delay this load and log its own warning.
    caplog.clear()
    waiting = ModelManager(ray_config(num_cpus=1, load_timeout="2m"))
    caplog.set_level(logging.INFO, logger=INITIALIZER_LOGGER)

    results: list[Any] = []
    loader = threading.Thread(
        target=lambda: results.append(
            waiting.load(save_scaler(tmp_path / "waits", 4.0), initializer="ray")
        )
    )
    loader.start()
    # The load warns while the first model reserves every CPU; unloading it lets
    # Ray place the second actor.
    deadline = time.monotonic() + WAIT
    while not pending_warnings(caplog) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pending_warnings(caplog)
    assert holder.unload(held_path, initializer="ray")
    loader.join(WAIT)

    assert not loader.is_alive()
    assert len(results) == 1
    assert results[0].run([1.0]) == [4.0]
    started = [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.INFO and "started after" in record.getMessage()
    ]
    assert len(started) == 1
    assert waiting.unload(str(tmp_path / "waits"), initializer="ray")
