"""The operator under benchmark: `python -m tuneforge_operator` on one namespace, and its inputs.

Its settings are those of the operator's integration tests (standalone kopf, metrics and
liveness on free ports, runtimes re-read on every reconcile), so numbers compare with theirs.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from _kube import REPO_ROOT, KubeControlPlane, Service, free_port

from tuneforge.api.runtime import TrainingRuntime, runtimes_configmap

JOBS = "/apis/tuneforge.io/v1alpha1/namespaces/{ns}/finetunejobs"
RAYJOBS = "/apis/ray.io/v1/namespaces/{ns}/rayjobs"
RUNTIME = TrainingRuntime.model_validate(
    {
        "image": "registry.example/tuneforge-trainer:bench",
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "serviceAccountName": "trainer",
        "s3SecretRef": "s3-credentials",
        "mlflowSecretRef": "mlflow-credentials",
        "env": {"HF_HUB_OFFLINE": "1"},
    }
)


def job_manifest(name: str) -> dict[str, Any]:
    """A two-worker LoRA FineTuneJob as a user writes it."""
    return {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "method": "lora",
            "dataset": {"uri": "s3://datasets/dogs", "instancePrompt": "a photo of sks dog"},
            "training": {"maxSteps": 40, "batchSize": 1},
            "resources": {"workers": 2, "gpusPerWorker": 1},
            "output": {"registeredModel": "sks-dog"},
        },
    }


def install_runtimes(plane: KubeControlPlane, namespace: str) -> None:
    """The `tuneforge-runtimes` ConfigMap as the chart creates it."""
    configmap = runtimes_configmap({"default": RUNTIME}, namespace)
    plane.ok("POST", f"/api/v1/namespaces/{namespace}/configmaps", configmap)


class OperatorProcess:
    """The operator in a child process, watching one namespace."""

    def __init__(
        self, plane: KubeControlPlane, namespace: str, log_dir: Path, env: dict[str, str]
    ) -> None:
        """Configure it for `namespace`; `env` adds or overrides operator settings."""
        self.liveness_port = free_port()
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [
                    str(REPO_ROOT / "operator"),
                    str(REPO_ROOT / "sdk"),
                    os.environ.get("PYTHONPATH", ""),
                ]
            ),
            "KUBECONFIG": str(plane.kubeconfig),
            "TUNEFORGE_OPERATOR_NAMESPACES": namespace,
            "TUNEFORGE_OPERATOR_RUNTIME_NAMESPACE": namespace,
            "TUNEFORGE_OPERATOR_METRICS_PORT": str(free_port()),
            "TUNEFORGE_OPERATOR_LIVENESS_PORT": str(self.liveness_port),
            "TUNEFORGE_OPERATOR_BIND_ADDRESS": "127.0.0.1",
            "TUNEFORGE_OPERATOR_PEERING_NAME": "",
            "TUNEFORGE_OPERATOR_RUNTIME_CACHE_SECONDS": "0",
            **env,
        }
        self.log = log_dir / f"operator-{namespace}.log"
        self.service: Service | None = None

    def start(self) -> None:
        """Start it and wait until its liveness endpoint answers."""
        command = [sys.executable, "-m", "tuneforge_operator"]
        self.service = Service.start("operator", command, self.log, self.env)
        self.service.wait_ready(self._alive, timeout_s=60)

    @property
    def pid(self) -> int:
        """The operator's process id."""
        assert self.service is not None
        return self.service.pid

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.service is not None:
            self.service.stop()

    def _alive(self) -> bool:
        url = f"http://127.0.0.1:{self.liveness_port}/healthz"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=2) as response:
                return int(response.status) < 500
        except urllib.error.HTTPError as error:
            return error.code < 500
