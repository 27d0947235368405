"""``caikit-mm train``, run as a user runs it: ``python -m caikit_mm train`` in a
new process, with module libraries found through installed entry points."""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plugin_dists import make_distribution
from training_modules import wait_for_file

TESTS_DIR = Path(__file__).resolve().parent
WAIT = 120  # seconds; only a guard against a hang


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment whose Python finds the training test modules as a library."""
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(
        site,
        "training-test-library",
        {"caikit_mm.modules": {"training": "training_modules"}},
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(TESTS_DIR)])
    env.pop("CAIKIT_MM_CONFIG_FILES", None)
    return env


@pytest.fixture
def sigint_not_ignored() -> Iterator[None]:
    """Let the commands started here receive SIGINT even if pytest ignores it.

    A shell without job control starts background commands with SIGINT ignored,
    and a child process inherits that, whereas a handled signal is reset to its
    default action when the child starts.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def run_train(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caikit_mm", "train", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )


def start_train(env: dict[str, str], *args: str, **popen: Any) -> subprocess.Popen[str]:
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, "-m", "caikit_mm", "train", *args],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        **popen,
    )


@pytest.mark.parametrize("trainer", ["default", "subprocess"])
def test_cli_train_saves_model(
    cli_env: dict[str, str], tmp_path: Path, trainer: str
) -> None:
    save_path = tmp_path / "echo"
    result = run_train(
        cli_env,
        "training-test-echo",
        "--save-path",
        str(save_path),
        "--trainer",
        trainer,
        "--param",
        'value={"layers": [64, 32], "name": "x"}',
        "--wait",
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["status"] == "COMPLETED"
    assert output["trainer"] == trainer
    assert output["training_id"].startswith(f"{trainer}-")
    assert output["save_path"] == str(save_path)
    assert output["module_id"] == "training-test-echo"
    assert output["errors"] == []
    assert f"{output['training_id']} COMPLETED" in result.stderr
    config = (save_path / "config.yml").read_text(encoding="utf-8")
    assert "layers:" in config
    assert "name: x" in config


def test_cli_train_status_lines(cli_env: dict[str, str], tmp_path: Path) -> None:
    marker, release = tmp_path / "started", tmp_path / "release"
    process = start_train(
        cli_env,
        "training-test-blocking",
        "--save-path",
        str(tmp_path / "m"),
        "--param",
        f"marker={marker}",
        "--param",
        f"release={release}",
    )
    assert process.stderr is not None
    wait_for_file(marker)
    lines = [process.stderr.readline()]
    while "RUNNING" not in lines[-1]:
        assert lines[-1], f"no RUNNING line before end of output: {lines}"
        lines.append(process.stderr.readline())
    release.write_text("go", encoding="utf-8")
    stdout, rest = process.communicate(timeout=WAIT)
    assert process.returncode == 0, rest
    training_id = json.loads(stdout)["training_id"]
    assert lines[-1] == f"caikit-mm train: {training_id} RUNNING\n"
    assert f"caikit-mm train: {training_id} COMPLETED\n" in rest


def test_cli_train_save_with_id_and_string_param(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    result = run_train(
        cli_env,
        "training-test-echo",
        "--save-path",
        str(tmp_path),
        "--save-with-id",
        "--model-name",
        "echo",
        "--training-id",
        "cli-job",
        "--param",
        "value=not json",
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["training_id"] == "cli-job"
    assert output["save_path"] == str(tmp_path / "cli-job" / "echo")
    config = (tmp_path / "cli-job" / "echo" / "config.yml").read_text(encoding="utf-8")
    assert "value: not json" in config


def test_cli_train_module_path(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = run_train(
        cli_env, "training_modules:Echo", "--save-path", str(tmp_path / "m")
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["module_id"] == "training-test-echo"


def test_cli_train_failure_exits_1(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = run_train(
        cli_env,
        "training-test-failing",
        "--save-path",
        str(tmp_path / "m"),
        "--param",
        "message=no rows left",
    )
    assert result.returncode == 1
    output = json.loads(result.stdout)
    assert output["status"] == "ERRORED"
    assert output["errors"] == ["ValueError: no rows left"]
    assert "ERRORED: ValueError: no rows left" in result.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["training-test-echo", "--param", "value"], "is not KEY=VALUE"),
        (["training-test-echo", "--param", "a=1", "--param", "a=2"], "given twice"),
        (["no-such-module-id"], "is not a registered module id"),
        (["training_modules:HANG_GUARD"], "not a ModuleBase subclass"),
    ],
)
def test_cli_train_rejects_input(
    cli_env: dict[str, str], tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_train(cli_env, *args, "--save-path", str(tmp_path / "m"))
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stdout == ""


def test_cli_train_unknown_module_lists_ids(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    # "training" is the name of the test library's entry point, not a module id.
    result = run_train(cli_env, "training", "--save-path", str(tmp_path / "m"))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "MODULE 'training' is not a registered module id" in result.stderr
    assert "training-test-echo (Echo, training_modules:Echo)" in result.stderr
    assert "training-test-failing (Failing, training_modules:Failing)" in result.stderr
    assert "package.module:Class" in result.stderr
    assert "Installed module libraries" not in result.stderr


@pytest.mark.parametrize(
    ("module", "messages"),
    [
        (
            "nosuch.mod:Cls",
            ["cannot import 'nosuch.mod'", "Check the spelling"],
        ),
        (
            "training_modules:Nope",
            [
                "'training_modules' has no attribute 'Nope'",
                "Module classes in 'training_modules': Blocking, Combine, Echo",
            ],
        ),
    ],
)
def test_cli_train_bad_module_path(
    cli_env: dict[str, str], tmp_path: Path, module: str, messages: list[str]
) -> None:
    result = run_train(cli_env, module, "--save-path", str(tmp_path / "m"))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"caikit-mm train: ValueError: MODULE {module!r}")
    assert result.stderr.count("\n") == 1
    for message in messages:
        assert message in result.stderr
    assert "ModuleNotFoundError" not in result.stderr
    assert "AttributeError" not in result.stderr


@pytest.mark.parametrize("trainer", ["default", "subprocess"])
@pytest.mark.usefixtures("sigint_not_ignored")
def test_cli_train_ctrl_c_cancels(
    cli_env: dict[str, str], tmp_path: Path, trainer: str
) -> None:
    marker = tmp_path / "started"
    save_path = tmp_path / "m"
    process = start_train(
        cli_env,
        "training-test-blocking",
        "--save-path",
        str(save_path),
        "--trainer",
        trainer,
        "--param",
        f"marker={marker}",
    )
    training_pid = int(wait_for_file(marker))
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=WAIT)
    assert process.returncode == 130, stderr
    assert "interrupted; canceling training" in stderr
    assert "canceled" in stderr
    assert json.loads(stdout)["status"] == "CANCELED"
    assert not save_path.exists()
    if trainer == "subprocess":
        with pytest.raises(ProcessLookupError):
            os.kill(training_pid, 0)


@pytest.mark.usefixtures("sigint_not_ignored")
def test_cli_train_second_ctrl_c_exits(cli_env: dict[str, str], tmp_path: Path) -> None:
    marker = tmp_path / "started"
    process = start_train(
        cli_env,
        "training-test-blocking",
        "--save-path",
        str(tmp_path / "m"),
        "--param",
        f"marker={marker}",
        "--param",
        "watch=none",
    )
    assert process.stderr is not None
    wait_for_file(marker)
    process.send_signal(signal.SIGINT)
    line = read_line_with(process, "canceling training")
    # The job ignores the cancel, so the command prints that it waits for it.
    line = process.stderr.readline()
    assert "waiting up to 60 s for training" in line
    assert "press Ctrl-C again to stop waiting" in line
    # Only a second Ctrl-C ends the wait.
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=WAIT)
    assert process.returncode == 130
    assert "caikit-mm: interrupted" in stderr
    assert stdout == ""
    assert not (tmp_path / "m").exists()


def test_cli_train_timeout_cancels(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = run_train(
        cli_env,
        "training-test-blocking",
        "--save-path",
        str(tmp_path / "m"),
        "--param",
        f"marker={tmp_path / 'started'}",
        "--timeout",
        "0.5",
    )
    assert result.returncode == 1
    assert "timed out after 0.5 s" in result.stderr
    assert json.loads(result.stdout)["status"] == "CANCELED"


def read_line_with(process: subprocess.Popen[str], text: str) -> str:
    """Read standard error until a line contains ``text``, and return that line."""
    assert process.stderr is not None
    line = process.stderr.readline()
    while text not in line:
        assert line, f"the command ended before it printed {text!r}"
        line = process.stderr.readline()
    return line


def test_cli_train_timeout_reports_wait(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    release = tmp_path / "release"
    process = start_train(
        cli_env,
        "training-test-blocking",
        "--save-path",
        str(tmp_path / "m"),
        "--param",
        f"marker={tmp_path / 'started'}",
        "--param",
        f"release={release}",
        "--param",
        "watch=none",
        "--timeout",
        "0.5",
    )
    read_line_with(process, "timed out after 0.5 s")
    line = read_line_with(process, "waiting up to")
    assert "waiting up to 60 s for training" in line
    assert "to stop" in line
    # The train that ignored the cancel returns now, which ends the wait.
    release.write_text("go", encoding="utf-8")
    stdout, stderr = process.communicate(timeout=WAIT)
    assert process.returncode == 1
    assert json.loads(stdout)["status"] == "CANCELED"
    assert "waiting up to" not in stderr
    assert "did not stop" not in stderr
    assert not (tmp_path / "m").exists()


def test_cli_train_progress_on_terminal(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    leader, follower = os.openpty()
    # A terminal with no size makes progress bars draw nothing, so give it one.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    marker, release = tmp_path / "started", tmp_path / "release"
    process = start_train(
        cli_env,
        "training-test-blocking",
        "--save-path",
        str(tmp_path / "m"),
        "--param",
        f"marker={marker}",
        "--param",
        f"release={release}",
        stderr=follower,
    )
    os.close(follower)
    wait_for_file(marker)
    screen = read_until(leader, b"RUNNING")
    release.write_text("go", encoding="utf-8")
    stdout, _ = process.communicate(timeout=WAIT)
    os.close(leader)
    assert process.returncode == 0
    output = json.loads(stdout)
    assert f"training {output['training_id']}: RUNNING".encode() in screen
    assert b"\r" in screen


def read_until(fd: int, expected: bytes) -> bytes:
    screen = b""
    deadline = time.monotonic() + WAIT
    while expected not in screen:
        assert time.monotonic() < deadline, f"never saw {expected!r} in {screen!r}"
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            screen += os.read(fd, 4096)
    return screen


def test_cli_train_iris_example(tmp_path: Path) -> None:
    from caikit_mm_examples.iris import MODULE_ID

    env = dict(os.environ)
    env.pop("CAIKIT_MM_CONFIG_FILES", None)
    save_path = tmp_path / "iris"
    result = run_train(
        env,
        MODULE_ID,
        "--save-path",
        str(save_path),
        "--trainer",
        "subprocess",
        "--param",
        "C=0.5",
        "--param",
        "max_iter=300",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "COMPLETED"
    loaded = subprocess.run(
        [
            sys.executable,
            "-m",
            "caikit_mm",
            "load",
            str(save_path),
            "--run",
            '{"inputs": [[5.1, 3.5, 1.4, 0.2]]}',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["result"][0]["label"] == "setosa"


def test_cli_train_existing_path_names_flags(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    save_path = tmp_path / "m"
    save_path.mkdir()
    (save_path / "config.yml").write_text("module_id: x\n", encoding="utf-8")
    result = run_train(cli_env, "training-test-echo", "--save-path", str(save_path))
    assert result.returncode == 1
    assert "--save-with-id" in result.stderr
    assert "--overwrite" in result.stderr
    assert "save_with_id=True" not in result.stderr
    assert "overwrite=True" not in result.stderr


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf", "soon"])
def test_cli_train_rejects_bad_timeout(
    cli_env: dict[str, str], tmp_path: Path, timeout: str
) -> None:
    save_path = tmp_path / "m"
    result = run_train(
        cli_env,
        "training-test-echo",
        "--save-path",
        str(save_path),
        "--timeout",
        timeout,
    )
    assert result.returncode == 2
    assert "greater than 0" in result.stderr
    assert not save_path.exists()
