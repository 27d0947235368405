"""Shared test fixtures: caikit model folders saved by another project, and
configurations that do not depend on the process-wide one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_server import fake_aws_env, s3_bucket, s3_server  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[1]
CAIKIT_FIXTURES = Path(
    os.environ.get(
        "CAIKIT_MM_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures" / "caikit"
    )
)


@pytest.fixture
def caikit_fixtures() -> Path:
    """Folder of caikit-format models, read in place; skip where it is absent."""
    if not CAIKIT_FIXTURES.is_dir():
        pytest.skip(
            f"caikit model fixtures not found at {CAIKIT_FIXTURES}; they sit beside "
            "the repository in CI (set CAIKIT_MM_FIXTURES to point elsewhere)"
        )
    return CAIKIT_FIXTURES


@pytest.fixture(autouse=True)
def _isolated_config_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep a developer's own config files and overrides out of every test."""
    monkeypatch.delenv("CAIKIT_MM_CONFIG_FILES", raising=False)
    for name in list(os.environ):
        if name.startswith("MODEL_MANAGEMENT"):
            monkeypatch.delenv(name)
    yield


@pytest.fixture(scope="session")
def ray_local() -> Iterator[object]:
    """The ``ray`` module, connected to a local 2-CPU Ray instance for the
    whole session; Ray tests of task mode and actors share it."""
    from ray_support import short_temp_dir, start_local_ray

    temp_dir = short_temp_dir("cmm-rl-")
    ray = start_local_ray(temp_dir)
    yield ray
    ray.shutdown()
    import shutil

    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_head() -> Iterator[object]:
    """A ``ray start --head`` node on 127.0.0.1 with its job server, stopped
    (by the pids of its own processes) at the end of the session."""
    from ray_support import HeadNode

    node = HeadNode.start()
    yield node
    node.stop()
