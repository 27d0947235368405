"""RAY trainings that Ray has not started: the warnings that explain the wait.

The first warning comes 5 s after the submission, so each test waits that long.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ray_modules import Interruptible
from ray_support import RUNTIME_ENV, HeadNode
from training_modules import Echo, wait_for_file

from caikit_mm import ModelManager
from caikit_mm.model_management.training import TrainingStatus

# A custom resource that no node of the test clusters has.
ABSENT_RESOURCE = "caikit_mm_test_absent"
WAIT = 120.0
TASK_LOGGER = "caikit_mm.ray._task"
JOB_LOGGER = "caikit_mm.ray._job"


def task_config(**trainer: Any) -> dict[str, Any]:
    config = {"mode": "task", "num_cpus": 1, "runtime_env": RUNTIME_ENV, **trainer}
    return {
        "model_management": {"trainers": {"ray": {"type": "RAY", "config": config}}}
    }


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


def messages(
    caplog: pytest.LogCaptureFixture, logger: str, level: int = logging.WARNING
) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == logger and record.levelno == level
    ]


def wait_for_message(
    caplog: pytest.LogCaptureFixture, logger: str, level: int = logging.WARNING
) -> list[str]:
    """Wait until ``logger`` has logged at ``level``; return its messages."""
    deadline = time.monotonic() + WAIT
    while not messages(caplog, logger, level) and time.monotonic() < deadline:
        time.sleep(0.1)
    return messages(caplog, logger, level)


def cancel_and_wait(future: Any) -> None:
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    future.cancel()
    assert done.wait(WAIT)
    assert future.status is TrainingStatus.CANCELED


def test_task_absent_resource_warns(
    ray_local: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = ModelManager(task_config(resources={ABSENT_RESOURCE: 1}))
    caplog.set_level(logging.WARNING, logger=TASK_LOGGER)
    future = manager.train(Echo, trainer="ray", save_path=tmp_path / "never")
    try:
        warnings = wait_for_message(caplog, TASK_LOGGER)
        status = future.status
    finally:
        cancel_and_wait(future)

    assert status is TrainingStatus.QUEUED
    assert len(warnings) == 1
    warning = warnings[0]
    assert f"Training {future.id} of Echo has not started" in warning
    assert f"It requests CPU 1, {ABSENT_RESOURCE} 1." in warning
    assert f"{ABSENT_RESOURCE} 0 of 0" in warning
    assert f"No live node has {ABSENT_RESOURCE} in that amount" in warning
    assert "so the task cannot start" in warning
    assert "stays QUEUED" in warning
    assert "resources of trainer 'ray'" in warning
    assert not (tmp_path / "never").exists()


def test_task_waiting_for_cpus_starts(
    ray_local: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cpus = ray_local.cluster_resources()["CPU"]
    holder = ModelManager(task_config(num_cpus=cpus))
    marker = tmp_path / "holder-started"
    holding = holder.train(
        Interruptible,
        trainer="ray",
        save_path=tmp_path / "held",
        marker=str(marker),
        stopped=str(tmp_path / "holder-stopped"),
    )
    wait_for_file(marker)
    # Work left by earlier tests can log its own warnings.
    caplog.clear()
    caplog.set_level(logging.INFO, logger=TASK_LOGGER)
    waiting = ModelManager(task_config()).train(
        Echo, trainer="ray", save_path=tmp_path / "waits", value=7
    )
    try:
        warnings = wait_for_message(caplog, TASK_LOGGER)
        status = waiting.status
    finally:
        cancel_and_wait(holding)

    assert status is TrainingStatus.QUEUED
    assert len(warnings) == 1
    assert f"Training {waiting.id} of Echo" in warnings[0]
    assert f"CPU 0 of {cpus:g}" in warnings[0]
    assert "Other tasks and actors hold the resources" in warnings[0]
    # Cancelling the first training frees its CPUs, so Ray starts the second.
    assert waiting.wait(WAIT) is TrainingStatus.COMPLETED
    started = [
        text
        for text in messages(caplog, TASK_LOGGER, logging.INFO)
        if f"Training {waiting.id} started on Ray after" in text
    ]
    assert len(started) == 1


def test_job_absent_resource_warns(
    ray_head: HeadNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = ModelManager(job_config(ray_head, resources={ABSENT_RESOURCE: 1}))
    caplog.set_level(logging.WARNING, logger=JOB_LOGGER)
    future = manager.train(Echo, trainer="job", save_path=tmp_path / "never")
    try:
        warnings = wait_for_message(caplog, JOB_LOGGER)
        status = future.status
    finally:
        cancel_and_wait(future)

    assert status is TrainingStatus.QUEUED
    assert len(warnings) == 1
    warning = warnings[0]
    assert f"Training {future.id} (Ray job caikit_mm-{future.id})" in warning
    assert "has been PENDING" in warning
    assert f"It requests CPU 1, {ABSENT_RESOURCE} 1." in warning
    # Ray's own message for a job whose entrypoint reserves resources.
    assert "waiting for resources" in warning
    assert "RAY_JOB_START_TIMEOUT_SECONDS" in warning
    assert "resources of trainer 'job'" in warning
    assert not (tmp_path / "never").exists()
