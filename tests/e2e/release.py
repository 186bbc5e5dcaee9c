"""Install the TuneForge chart on the test apiserver the way `helm install` would, and run its
operator Deployment as a local process with the Deployment's own command and environment.

There is no kubelet or scheduler here, so the pods the chart describes do not start by
themselves. Instead each container spec is read back from the apiserver and run as a process
with its environment resolved like the kubelet does (`tests/e2e/podenv.py`). What a pod gets
from its node rather than from the chart is substituted, and every substitution is listed in
`POD_SUBSTITUTES` below, nothing else:

- the operator authenticates with a token of the chart's ServiceAccount (a pod mounts one) in
  a kubeconfig, so every call it makes is checked against the chart's RBAC;
- listeners bind 127.0.0.1 (a pod binds its own IP: `0.0.0.0`);
- `python` is this venv's interpreter (the image's), HOME a fresh folder (the pod's emptyDir);
- the trainer's entrypoint joins the local Ray head (KubeRay points `RAY_ADDRESS` at the
  RayCluster it made).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.podenv import container_env
from tests.fixtures._kube_cluster import KubeCluster
from tests.fixtures._procs import ManagedProcess, http_ok
from tests.integration.helm.apply import apply_all, install_chart_crds, object_path
from tests.unit.helm.helmchart import chart_copy, is_hook, one, render

RELEASE = "tf-e2e"
OPERATOR_READY_TIMEOUT_S = 90.0
POD_SUBSTITUTES = ("KUBECONFIG", "TUNEFORGE_OPERATOR_BIND_ADDRESS", "HOME", "RAY_ADDRESS")
"""The only variables the test sets in place of what a node would give a pod (see above)."""
IMAGE_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "TZ")
"""Variables a container image would carry; everything else comes from the chart."""


@dataclass
class Release:
    """The chart installed in `namespace`, watching `jobs_namespace`."""

    kube: KubeCluster
    namespace: str
    jobs_namespace: str
    values: dict[str, Any]
    docs: list[dict[str, Any]] = field(default_factory=list)
    """What `helm template` rendered (hooks included)."""

    def read_back(self, kind: str, name_suffix: str) -> dict[str, Any]:
        """The rendered object of this kind, as the apiserver stores it now."""
        rendered = one([d for d in self.docs if not is_hook(d)], kind, name_suffix)
        response = self.kube.request("GET", object_path(rendered))
        assert response.ok, f"{kind} {rendered['metadata']['name']}: {response.message}"
        return dict(response.body)

    def serve_config(self) -> dict[str, Any]:
        """The serving RayService's `serveConfigV2`, parsed."""
        rayservice = self.read_back("RayService", "-serving")
        return dict(yaml.safe_load(rayservice["spec"]["serveConfigV2"]))


def chart_values(
    jobs_namespace: str,
    s3: Any,
    mlflow: Any,
    ports: dict[str, int],
    serving_cache: Path,
    base_model_uri: str,
) -> dict[str, Any]:
    """Values a platform team would write for this cluster: its S3, its MLflow, one team
    namespace, serving on CPU. Ports are picked free (processes share one network here)."""
    return {
        "operator": {
            "watchNamespaces": [jobs_namespace],
            "healthPort": ports["health"],
            "logFormat": "text",
            "resyncSeconds": 2,
        },
        "metrics": {"port": ports["metrics"]},
        "s3": {
            "endpoint": s3.url,
            "region": "us-east-1",
            "accessKeyId": s3.access_key,
            "secretAccessKey": s3.secret_key,
        },
        "mlflowTracking": {"uri": mlflow.tracking_uri},
        "serving": {
            "enabled": True,
            "auth": {"enabled": False},  # the test calls the API without a token
            "app": {
                "baseModel": base_model_uri,
                "device": "cpu",
                "numGpus": 0,
                "numCpus": 1,
                "cacheDir": str(serving_cache),
                "numReplicas": 1,
                "autoscaling": {"enabled": False},
                "limits": {"maxWidth": 128, "maxHeight": 128, "maxSteps": 8},
                "hotswap": {"maxLoraRank": 8},
            },
        },
    }


def install(
    kube: KubeCluster, namespace: str, jobs_namespace: str, values: dict[str, Any], work: Path
) -> Release:
    """`helm template` + create everything but the hooks (CRDs first, only missing ones,
    as Helm does with `crds/`)."""
    chart = chart_copy(work)
    docs = render(chart, values, release=RELEASE, namespace=namespace)
    install_chart_crds(kube)
    apply_all(kube, [d for d in docs if not is_hook(d)])
    return Release(kube, namespace, jobs_namespace, values, docs)


def image_env(home: Path) -> dict[str, str]:
    """What the image gives every process: PATH (this venv first), locale; HOME as given."""
    env = {key: os.environ[key] for key in IMAGE_ENV if key in os.environ}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["HOME"] = str(home)
    return env


def start_operator(release: Release, work: Path) -> tuple[ManagedProcess, dict[str, str]]:
    """Run the chart's operator container: its command and env, as its ServiceAccount."""
    deployment = release.read_back("Deployment", "-operator")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    pod_name = f"{deployment['metadata']['name']}-e2e"
    env = container_env(release.kube, container, release.namespace, pod_name)
    home = work / "operator-home"
    home.mkdir(parents=True, exist_ok=True)
    kubeconfig = release.kube.service_account_kubeconfig(
        release.namespace, pod["spec"]["serviceAccountName"], work / "operator-kubeconfig"
    )
    env.update(image_env(home))
    env["KUBECONFIG"] = str(kubeconfig)
    env["TUNEFORGE_OPERATOR_BIND_ADDRESS"] = "127.0.0.1"
    command = list(container["command"]) + list(container.get("args") or [])
    assert command[0] == "python", f"the operator image runs {command}; expected python -m ..."
    command[0] = sys.executable
    process = ManagedProcess("operator (chart)", command, work / "operator.log", env=env)
    health = f"http://127.0.0.1:{env['TUNEFORGE_OPERATOR_LIVENESS_PORT']}/healthz"
    process.wait_ready(lambda: http_ok(health), OPERATOR_READY_TIMEOUT_S, f"GET {health}")
    return process, env
