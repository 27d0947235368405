"""The caikit-mm command line, run as a user runs it: in a new process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from plugin_dists import make_distribution

import caikit_mm

TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment whose Python finds a module library and a broken plugin."""
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(
        site,
        "cli-test-library",
        {
            "caikit_mm.modules": {"fixtures": "fixture_modules"},
            "caikit_mm.finders": {"CLI_BROKEN": "cli_broken_plugin:Broken"},
        },
        {"cli_broken_plugin.py": "raise ImportError('cli plugin cannot import')\n"},
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(TESTS_DIR)])
    env.pop("CAIKIT_MM_CONFIG_FILES", None)
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caikit_mm", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_load_and_run(cli_env: dict[str, str], caikit_fixtures: Path) -> None:
    result = run_cli(
        cli_env, "load", str(caikit_fixtures / "models" / "foo"), "--run", '{"x": 1}'
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["module_id"] == "00110203-0405-0607-0809-0a0b02dd0e0f"
    assert output["result"]["inputs"] == {"x": 1}


def test_find_explain(cli_env: dict[str, str], caikit_fixtures: Path) -> None:
    folder = caikit_fixtures / "dummy_module"
    result = run_cli(cli_env, "find", str(folder), "--explain")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["finder"] == {"name": "default", "type": "LOCAL"}
    assert output["model_path"] == str(folder)
    assert output["module_config"]["utf_text"] == "人工智能"
    assert output["initializer"]["backend"] == "LOCAL"
    assert output["initializer"]["module_class"] == "fixture_modules.SampleModule"


def test_plugins_lists_sources_and_failures(cli_env: dict[str, str]) -> None:
    result = run_cli(cli_env, "plugins")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    finders = {f["type"]: f for f in output["finders"]}
    assert finders["LOCAL"]["source"] == "built-in"
    assert finders["LOCAL"]["error"] == ""
    assert finders["CLI_BROKEN"]["source"] == "cli-test-library 1.0"
    assert "cli plugin cannot import" in finders["CLI_BROKEN"]["error"]
    assert {i["type"] for i in output["initializers"]} >= {"LOCAL"}
    assert {b["type"] for b in output["backends"]} >= {"LOCAL"}
    assert any("fixture_modules" in name for name in output["module_libraries"])


def test_config_prints_and_validates(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = run_cli(cli_env, "config")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model_management"]["finders"]["default"][
        "type"
    ] == ("LOCAL")
    extra = tmp_path / "extra.yml"
    extra.write_text("model_management:\n  finders:\n    more: {type: LOCAL}\n")
    result = run_cli(cli_env, "--config", str(extra), "config", "--validate")
    assert result.returncode == 0, result.stderr
    assert str(extra) in result.stdout


def test_failure_is_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "missing-model"
    result = run_cli(cli_env, "load", str(missing))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "ModelNotFoundError" in lines[0]
    assert str(missing) in lines[0]


def test_multiline_error_kept_whole(cli_env: dict[str, str], tmp_path: Path) -> None:
    tagged = tmp_path / "tagged.yml"
    tagged.write_text("model_management: !!python/object:os.system {}\n")
    result = run_cli(cli_env, "--config", str(tagged), "config", "--validate")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "line 1" in lines[0]
    assert lines[0].endswith("read with the safe loader.")


def test_debug_shows_traceback(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = run_cli(cli_env, "--debug", "load", str(tmp_path / "missing-model"))
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_invalid_config_file_fails_cleanly(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("model_management:\n  finders:\n    default: {type: NOPE}\n")
    result = run_cli(cli_env, "--config", str(bad), "config", "--validate")
    assert result.returncode == 1
    assert str(bad) in result.stderr
    assert "model_management.finders.default.type" in result.stderr


def test_run_must_be_json_object(
    cli_env: dict[str, str], caikit_fixtures: Path
) -> None:
    result = run_cli(
        cli_env, "load", str(caikit_fixtures / "models" / "foo"), "--run", "[1]"
    )
    assert result.returncode == 1
    assert "--run must be a JSON object" in result.stderr


def test_version_flag(cli_env: dict[str, str]) -> None:
    result = run_cli(cli_env, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"caikit-mm {caikit_mm.__version__}"
