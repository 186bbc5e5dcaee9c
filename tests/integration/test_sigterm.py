"""SIGTERM (how Kubernetes stops a pod) ends `tuneforge serve`, the trainer and the operator
cleanly.

Each test starts the real process in its own session on the tiny model, waits until it is
serving or training, sends SIGTERM to that one PID and asserts: it exits within the pod's
default grace period with the documented status, prints no C++ stack dump, and leaves no
process of its session behind (Ray's raylet, GCS, workers and Serve replicas included).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.fixtures._procs import free_port, http_ok
from tests.fixtures.trainer import make_trainer_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GRACE_S = 30.0
"""Kubernetes' default terminationGracePeriodSeconds."""
DUMP_MARKERS = ("terminate called", "*** SIGTERM received", "Stack trace", "Aborted")
READY_TIMEOUT_S = 300.0


class Started:
    """A command in its own session, its output in a file."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str], stdin: str = "") -> None:
        self.log = log
        with log.open("wb") as sink:
            self.popen = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        assert self.popen.stdin is not None
        self.popen.stdin.write(stdin.encode())
        self.popen.stdin.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready():
            code = self.popen.poll()
            assert code is None, f"exited {code} before {what}:\n{self.output()[-4000:]}"
            assert time.monotonic() < deadline, f"not {what} in time:\n{self.output()[-4000:]}"
            time.sleep(0.5)

    def session(self) -> list[psutil.Process]:
        """Live processes of the session this command leads (zombies excluded)."""
        members = []
        for process in psutil.process_iter(["status"]):
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if (
                    os.getsid(process.pid) == self.popen.pid
                    and process.info["status"] != psutil.STATUS_ZOMBIE
                ):
                    members.append(process)
        return members

    def terminate_and_wait(self) -> tuple[int, float]:
        """SIGTERM the leader only; its exit status and how long it took."""
        started = time.monotonic()
        self.popen.send_signal(signal.SIGTERM)
        try:
            code = self.popen.wait(timeout=GRACE_S + 30)
        except subprocess.TimeoutExpired:
            code = -9999
        return code, time.monotonic() - started

    def kill_leftovers(self) -> None:
        for process in self.session():
            with contextlib.suppress(psutil.Error):
                process.kill()
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The test's environment (network namespace flags included), home and MLflow embedded."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TUNEFORGE_", "MLFLOW_TRACKING", "RAY_ADDRESS"))
    }
    environment.update(TUNEFORGE_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    return environment


def _assert_clean_stop(proc: Started, code: int, took_s: float, expected: int) -> None:
    print(f"exit {code} after SIGTERM in {took_s:.1f} s")
    leftovers = [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in proc.session()]
    output = proc.output()
    assert code == expected, (
        f"exit {code} (want {expected}) after {took_s:.1f} s:\n{output[-4000:]}"
    )
    assert took_s < GRACE_S, f"took {took_s:.1f} s, beyond a {GRACE_S:.0f} s grace period"
    dumps = [marker for marker in DUMP_MARKERS if marker in output]
    assert not dumps, f"stack dump markers {dumps} in the output:\n{output[-4000:]}"
    assert not leftovers, "processes left behind:\n" + "\n".join(leftovers)


def _run_statuses(home: Path) -> list[str]:
    """Statuses of every MLflow run in embedded mode's store under `home`."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return [run.info.status for run in client.search_runs(experiments)]


def test_sigterm_stops_tuneforge_serve_and_its_ray(
    env: dict[str, str], tiny_model_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("tuneforge")),
        "serve",
        "--base-model",
        str(tiny_model_dir),
        "--port",
        str(port),
    ]
    serve_env = {**env, "TUNEFORGE_SERVING_TOKEN": "sigterm-test-token"}  # auth is on by default
    proc = Started(command, tmp_path / "serve.log", serve_env)
    try:
        proc.wait_for(
            lambda: "serving at" in proc.output() and http_ok(f"http://127.0.0.1:{port}/readyz"),
            "serving",
        )
        assert len(proc.session()) > 3, "Ray's processes should be running while serving"
        code, took_s = proc.terminate_and_wait()
        _assert_clean_stop(proc, code, took_s, expected=0)
        assert "stopping (SIGTERM)" in proc.output()
    finally:
        proc.kill_leftovers()


def test_sigterm_stops_the_trainer_ray_train_and_its_ray(
    env: dict[str, str], tiny_model_dir: Path, tiny_dataset_dir: Path, tmp_path: Path
) -> None:
    job = make_trainer_job(
        "lora",
        tiny_model_dir,
        tiny_dataset_dir,
        name="sigterm-job",
        training={"maxSteps": 500, "checkpointEverySteps": 1000},
    )
    command = [sys.executable, "-m", "tuneforge_trainer", "run", "--job", "-"]
    proc = Started(command, tmp_path / "trainer.log", env, stdin=json.dumps(job.to_manifest()))
    try:
        proc.wait_for(lambda: "tuneforge-progress " in proc.output(), "training")
        code, took_s = proc.terminate_and_wait()
        _assert_clean_stop(proc, code, took_s, expected=143)
        assert "stopped by SIGTERM" in proc.output()
        assert _run_statuses(Path(env["TUNEFORGE_HOME"])) == ["KILLED"]
    finally:
        proc.kill_leftovers()


def test_sigterm_stops_the_operator(kube: Any, kube_namespace: str, tmp_path: Path) -> None:
    from tests.integration.operator.harness import OperatorProcess, install_runtimes

    install_runtimes(kube, kube_namespace)
    operator = OperatorProcess(kube, kube_namespace, tmp_path)
    command = [sys.executable, "-m", "tuneforge_operator"]
    proc = Started(command, tmp_path / "operator.log", operator.env())
    try:
        proc.wait_for(lambda: http_ok(operator.liveness_url), "live")
        code, took_s = proc.terminate_and_wait()
        _assert_clean_stop(proc, code, took_s, expected=0)
    finally:
        proc.kill_leftovers()


def test_sigterm_stops_tuneforge_run_and_its_trainer(
    env: dict[str, str], tiny_model_dir: Path, tiny_dataset_dir: Path, tmp_path: Path
) -> None:
    from tuneforge.api import dump_job

    job = make_trainer_job(
        "lora",
        tiny_model_dir,
        tiny_dataset_dir,
        name="sigterm-run",
        training={"maxSteps": 500, "checkpointEverySteps": 1000},
    )
    job_file = tmp_path / "job.yaml"
    job_file.write_text(dump_job(job))
    command = [str(Path(sys.executable).with_name("tuneforge")), "run", "--verbose", str(job_file)]
    proc = Started(command, tmp_path / "run.log", env)
    try:
        proc.wait_for(lambda: "tuneforge-progress " in proc.output(), "training")
        code, took_s = proc.terminate_and_wait()
        _assert_clean_stop(proc, code, took_s, expected=130)
        assert "interrupted: job 'sigterm-run' stopped" in proc.output()
    finally:
        proc.kill_leftovers()
