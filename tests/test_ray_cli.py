"""``caikit-mm train --trainer ray`` and ``caikit-mm load --initializer ray``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray_modules import save_scaler
from ray_support import RUNTIME_ENV, TESTS_DIR, HeadNode, free_port

from caikit_mm.cli import main

WAIT = 120.0


def write_config(folder: Path, **sections: Any) -> str:
    path = folder / "ray.yml"
    path.write_text(yaml.safe_dump({"model_management": sections}), encoding="utf-8")
    return str(path)


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m caikit_mm`` in a new process that imports the test modules."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")])
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "caikit_mm", *arguments],
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT,
        check=False,
    )


def test_cli_train_on_ray_task(
    ray_local: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = {"type": "RAY", "config": {"num_cpus": 1, "runtime_env": RUNTIME_ENV}}
    config = write_config(tmp_path, trainers={"ray": trainer})
    save_path = tmp_path / "scaler"
    status = main(
        [
            "--config",
            config,
            "train",
            "ray_modules:Scaler",
            "--save-path",
            str(save_path),
            "--trainer",
            "ray",
            "--param",
            "factor=4",
        ]
    )
    output = json.loads(capsys.readouterr().out)
    assert status == 0
    assert output["status"] == "COMPLETED"
    assert output["trainer"] == "ray"
    assert output["save_path"] == str(save_path)
    assert (save_path / "config.yml").is_file()


def test_cli_load_with_ray_initializer(
    ray_local: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    initializer = {"type": "RAY", "config": {"num_cpus": 0, "runtime_env": RUNTIME_ENV}}
    config = write_config(tmp_path, initializers={"ray": initializer})
    path = save_scaler(tmp_path / "scaler", 4.0)
    status = main(
        [
            "--config",
            config,
            "load",
            path,
            "--initializer",
            "ray",
            "--run",
            '{"values": [1, 2]}',
        ]
    )
    output = json.loads(capsys.readouterr().out)
    assert status == 0
    assert output["model"] == "RemoteModel"
    assert output["result"] == [4.0, 8.0]


def test_cli_unreachable_cluster_names_address(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    initializer = {"type": "RAY", "config": {"address": address}}
    config = write_config(tmp_path, initializers={"ray": initializer})
    path = save_scaler(tmp_path / "scaler", 1.0)
    result = run_cli("--config", config, "load", path, "--initializer", "ray")
    assert result.returncode == 1
    assert "RemoteModelError" in result.stderr
    assert f"Cannot reach the Ray cluster at {address!r}" in result.stderr


def test_cli_train_as_ray_job(ray_head: HeadNode, tmp_path: Path) -> None:
    trainer_config = {
        "address": ray_head.job_server,
        "mode": "job",
        "python_executable": sys.executable,
        "runtime_env": RUNTIME_ENV,
        "auth_token_file": ray_head.token_file,
        "poll_interval": "0.2s",
    }
    config = write_config(
        tmp_path, trainers={"ray": {"type": "RAY", "config": trainer_config}}
    )
    save_path = tmp_path / "scaler"
    result = run_cli(
        "--config",
        config,
        "train",
        "ray_modules:Scaler",
        "--save-path",
        str(save_path),
        "--trainer",
        "ray",
        "--param",
        "factor=3",
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["status"] == "COMPLETED"
    assert (save_path / "config.yml").is_file()
