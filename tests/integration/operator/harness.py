"""Run the real operator (`python -m tuneforge_operator`) against the test apiserver.

Shared by the operator's integration tests and `benchmarks/operator_reconcile.py`.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures._kube_cluster import KubeCluster
from tests.fixtures._procs import ManagedProcess, free_port, http_ok
from tuneforge.api.runtime import TrainingRuntime, runtimes_configmap

REPO_ROOT = Path(__file__).resolve().parents[3]
JOBS = "/apis/tuneforge.io/v1alpha1/namespaces/{ns}/finetunejobs"
RAYJOBS = "/apis/ray.io/v1/namespaces/{ns}/rayjobs"
TEST_RUNTIME = TrainingRuntime.model_validate(
    {
        "image": "registry.example/tuneforge-trainer:test",
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "serviceAccountName": "trainer",
        "s3SecretRef": "s3-credentials",
        "mlflowSecretRef": "mlflow-credentials",
        "env": {"HF_HUB_OFFLINE": "1"},
    }
)
JOB_YAML = """
apiVersion: tuneforge.io/v1alpha1
kind: FineTuneJob
metadata:
  name: {name}
spec:
  method: lora
  dataset:
    uri: s3://datasets/dogs
    instancePrompt: a photo of sks dog
  training:
    maxSteps: 40
    batchSize: 1
  resources:
    workers: 2
    gpusPerWorker: 1
  output:
    registeredModel: {model}
"""


def job_manifest(name: str, model: str = "sks-dog", **spec: Any) -> dict[str, Any]:
    """A FineTuneJob as a user writes it in YAML."""
    manifest: dict[str, Any] = yaml.safe_load(JOB_YAML.format(name=name, model=model))
    manifest["spec"].update(spec)
    return manifest


def install_runtimes(
    kube: KubeCluster, namespace: str, runtimes: dict[str, TrainingRuntime] | None = None
) -> None:
    """Create (or replace) the `tuneforge-runtimes` ConfigMap as the chart would."""
    configmap = runtimes_configmap(runtimes or {"default": TEST_RUNTIME}, namespace)
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    kube.request("DELETE", f"{path}/{configmap['metadata']['name']}")
    response = kube.request("POST", path, configmap)
    assert response.ok, response.message


def create_job(kube: KubeCluster, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """POST a FineTuneJob; return what the server stored."""
    response = kube.request("POST", JOBS.format(ns=namespace), manifest)
    assert response.ok, response.message
    return dict(response.body)


def get_job(kube: KubeCluster, namespace: str, name: str) -> dict[str, Any] | None:
    """The FineTuneJob, or None."""
    response = kube.request("GET", f"{JOBS.format(ns=namespace)}/{name}")
    return dict(response.body) if response.ok else None


def patch_job(kube: KubeCluster, namespace: str, name: str, patch: dict[str, Any]) -> None:
    """Merge-patch a FineTuneJob (as `kubectl patch --type merge` does)."""
    response = kube.rest.request(
        "PATCH",
        f"{JOBS.format(ns=namespace)}/{name}",
        patch,
        content_type="application/merge-patch+json",
    )
    assert response.ok, response.message


def rayjobs(kube: KubeCluster, namespace: str) -> list[dict[str, Any]]:
    """Every RayJob in the namespace."""
    response = kube.request("GET", RAYJOBS.format(ns=namespace))
    assert response.ok, response.message
    return list(response.body.get("items", []))


def get_rayjob(kube: KubeCluster, namespace: str, name: str) -> dict[str, Any] | None:
    """The RayJob, or None."""
    response = kube.request("GET", f"{RAYJOBS.format(ns=namespace)}/{name}")
    return dict(response.body) if response.ok else None


def condition(job: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    """The condition of this type in a job's status."""
    for item in ((job or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == type_:
            return dict(item)
    return None


def all_succeeded(kube: KubeCluster, namespace: str, names: list[str]) -> bool:
    """Whether every named job has `Succeeded=True`."""
    return all(
        (condition(get_job(kube, namespace, name), "Succeeded") or {}).get("status") == "True"
        for name in names
    )


def wait_until(what: str, check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


def wait_for_condition(
    kube: KubeCluster,
    namespace: str,
    name: str,
    type_: str,
    status: str = "True",
    timeout_s: float = 60.0,
    reason: str | None = None,
) -> dict[str, Any]:
    """`kubectl wait --for=condition=<type>=<status>`: poll until the condition has that status.

    With `reason`, also that reason: a condition can hold one status for several reasons in
    turn (AdapterRegistered is Unknown while training, then again while MLflow is down).
    """

    def check() -> dict[str, Any] | None:
        job = get_job(kube, namespace, name)
        found = condition(job, type_)
        if found is None or found.get("status") != status:
            return None
        return job if reason is None or found.get("reason") == reason else None

    wanted = f"{type_}={status}" + (f" ({reason})" if reason else "")
    result: dict[str, Any] = wait_until(
        f"condition {wanted} on FineTuneJob {namespace}/{name}", check, timeout_s
    )
    return result


def events(kube: KubeCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    """Events about the FineTuneJob `name`."""
    response = kube.request("GET", f"/api/v1/namespaces/{namespace}/events")
    assert response.ok, response.message
    return [
        e
        for e in response.body.get("items", [])
        if e.get("involvedObject", {}).get("name") == name
        and e.get("involvedObject", {}).get("kind") == "FineTuneJob"
    ]


class OperatorProcess:
    """`python -m tuneforge_operator` in a subprocess, watching one namespace."""

    def __init__(
        self,
        kube: KubeCluster,
        namespace: str,
        log_dir: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.kube, self.namespace, self.log_dir = kube, namespace, log_dir
        self.metrics_port, self.liveness_port = free_port(), free_port()
        self.extra_env = dict(extra_env or {})
        self.process: ManagedProcess | None = None
        self.starts = 0

    def env(self) -> dict[str, str]:
        """The operator's environment: kubeconfig, namespace, ports, standalone mode."""
        path = os.pathsep.join(
            [str(REPO_ROOT / "operator"), str(REPO_ROOT / "sdk"), os.environ.get("PYTHONPATH", "")]
        )
        return {
            **os.environ,
            **self.kube.env(),
            "PYTHONPATH": path,
            "TUNEFORGE_OPERATOR_NAMESPACES": self.namespace,
            "TUNEFORGE_OPERATOR_RUNTIME_NAMESPACE": self.namespace,
            "TUNEFORGE_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "TUNEFORGE_OPERATOR_LIVENESS_PORT": str(self.liveness_port),
            "TUNEFORGE_OPERATOR_BIND_ADDRESS": "127.0.0.1",
            "TUNEFORGE_OPERATOR_PEERING_NAME": "",
            "TUNEFORGE_OPERATOR_RESYNC_SECONDS": "2",
            "TUNEFORGE_OPERATOR_RUNTIME_CACHE_SECONDS": "0",
            **self.extra_env,
        }

    @property
    def metrics_url(self) -> str:
        """Prometheus endpoint."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def liveness_url(self) -> str:
        """kopf liveness endpoint."""
        return f"http://127.0.0.1:{self.liveness_port}/healthz"

    def start(self, wait: bool = True) -> OperatorProcess:
        """Start (or restart) the operator; wait until its liveness endpoint answers."""
        self.starts += 1
        log = self.log_dir / f"operator-{self.namespace}-{self.starts}.log"
        self.process = ManagedProcess(
            "tuneforge-operator",
            [sys.executable, "-m", "tuneforge_operator"],
            log,
            env=self.env(),
            cwd=REPO_ROOT,
        )
        if wait:
            self.process.wait_ready(lambda: http_ok(self.liveness_url), 60.0, "GET /healthz")
        return self

    @property
    def pid(self) -> int:
        """PID of the operator's Python process (ManagedProcess may wrap it in a reaper)."""
        assert self.process is not None
        pending = [self.process.pid]
        while pending:
            pid = pending.pop()
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            if cmdline[1:3] == [b"-m", b"tuneforge_operator"]:
                return pid
            pending += [int(child) for child in children]
        raise RuntimeError("the operator process is not running")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no graceful shutdown."""
        assert self.process is not None
        os.kill(self.pid, signal.SIGKILL)
        self.process.stop(grace_s=5)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.process is not None and self.process.popen.poll() is None:
            self.process.stop(grace_s=10)

    def log(self) -> str:
        """Every log of every start, for failure messages."""
        return "\n".join(
            p.read_text(errors="replace")[-6000:]
            for p in sorted(self.log_dir.glob(f"operator-{self.namespace}-*.log"))
        )
