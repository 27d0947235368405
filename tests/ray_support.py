"""Ray instances for the Ray tests: one local ``ray.init`` and one head node.

The local instance (2 CPUs, no dashboard) serves task mode and the actors. The
head node, started with ``ray start --head`` on 127.0.0.1 with its job server,
serves job mode. Each uses its own short temporary folder, so that stopping
the head node can pick its processes by that folder and leave every other Ray
instance on the machine alone.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parent
RAY_CLI = Path(sys.executable).with_name("ray")
# Workers, actors and job entrypoints import the test modules from here.
RUNTIME_ENV: dict[str, Any] = {"env_vars": {"PYTHONPATH": str(TESTS_DIR)}}
START_TIMEOUT = 120.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def short_temp_dir(prefix: str) -> str:
    """Make a temporary folder with a short path: Ray's socket paths must fit
    in 107 bytes."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def ray_environment(token: str) -> dict[str, str]:
    """Return the environment of the head node: no usage reports, no metadata
    lookups, and token authentication with ``token``."""
    env = dict(os.environ)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["RAY_AUTH_MODE"] = "token"
    env["RAY_AUTH_TOKEN"] = token
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    return env


def start_local_ray(temp_dir: str) -> Any:
    """Start a new local Ray instance with 2 CPUs in this process."""
    import ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Ray 2.60 turns token authentication on for a new local instance and
    # keeps the token in ~/.ray; this instance stays out of that.
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        runtime_env=RUNTIME_ENV,
        _node_ip_address="127.0.0.1",
        _temp_dir=temp_dir,
        log_to_driver=False,
        configure_logging=False,
    )
    return ray


@dataclass
class HeadNode:
    """A Ray head node started by ``ray start --head`` for one test session.

    Attributes:
        temp_dir: The node's own temporary folder.
        gcs_address: ``<host>:<port>`` of its GCS.
        job_server: ``http://127.0.0.1:<port>`` of its job server.
        token: The token that its token authentication requires.
        token_file: A file holding ``token``.
    """

    temp_dir: str
    gcs_address: str
    job_server: str
    token: str = ""
    token_file: str = ""

    @classmethod
    def start(cls) -> HeadNode:
        """Start the node and wait until its job server responds."""
        temp_dir = short_temp_dir("cmm-rh-")
        gcs_port, dashboard_port = free_port(), free_port()
        command = [
            str(RAY_CLI),
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={gcs_port}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard_port}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            "--num-cpus=2",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
        ]
        token = secrets.token_hex(32)
        token_file = Path(temp_dir, "auth_token")
        token_file.write_text(token + "\n", encoding="utf-8")
        node = cls(
            temp_dir,
            f"127.0.0.1:{gcs_port}",
            f"http://127.0.0.1:{dashboard_port}",
            token,
            str(token_file),
        )
        result = subprocess.run(
            command,
            env=ray_environment(token),
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            node.stop()
            raise RuntimeError(
                f"ray start --head failed ({result.returncode}):\n{result.stderr}"
            )
        node.wait_for_job_server()
        return node

    def client(self) -> Any:
        """Return a ``JobSubmissionClient`` of this node, with its token."""
        from ray.job_submission import JobSubmissionClient

        headers = {"Authorization": f"Bearer {self.token}"}
        return JobSubmissionClient(self.job_server, headers=headers)

    def wait_for_job_server(self) -> None:
        from ray.exceptions import AuthenticationError

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.client().list_jobs()
                return
            except AuthenticationError:
                self.stop()
                raise
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.5)

    def processes(self) -> list[Any]:
        """List this node's processes: those whose command line names its
        temporary folder."""
        import psutil

        found: dict[int, Any] = {}
        for process in psutil.process_iter(["pid", "cmdline"]):
            cmdline = process.info.get("cmdline") or []
            if any(self.temp_dir in part for part in cmdline):
                found[process.pid] = process
                try:
                    children = process.children(recursive=True)
                except psutil.NoSuchProcess:
                    continue
                found.update((child.pid, child) for child in children)
        return list(found.values())

    def stop(self) -> None:
        """Terminate this node's processes by pid, then kill what remains."""
        import psutil

        processes = self.processes()
        for process in processes:
            try:
                process.terminate()
            except psutil.NoSuchProcess:
                continue
        _, alive = psutil.wait_procs(processes, timeout=10)
        for process in alive:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                continue
        shutil.rmtree(self.temp_dir, ignore_errors=True)
