"""A stand-in for KubeRay's RayJob controller that runs each RayJob on real Ray pods.

IT IS NOT KUBERAY. It is the state machine of tests/fixtures/kuberay_standin.py (RayJob status
as `rayjob_controller.go` writes it: Initializing, Running, Complete/Failed, retries, suspend,
deadlines) with outcome "execute" carried out the way KubeRay does on a cluster:

- at Initializing it creates the job's RayCluster (kuberay_raycluster.py: the head, its Service
  and the workers from `spec.rayClusterSpec`), and stays Initializing until every Ray pod is
  Running and ready and the head's dashboard answers `/api/gcs_healthz` (what KubeRay's
  injected readiness probe of the head checks, asked once more before submitting);
- then the submitter Job (kuberay_submitter.py) runs KubeRay's `ray job submit` against the
  head's dashboard; the RayJob ends Complete/SUCCEEDED or Failed/FAILED with that Job;
- while a job runs, deleted worker pods are re-created (KubeRay's RayCluster reconcile);
- suspending or failing the RayJob, or `stop()`, deletes the submitter Job and the cluster.

The test node's one deviation (`fit_cpu_to_node`, the pods' CPU requests) is applied where
the pods are made and explained in ray_job_spec.py and test_ray_cluster_pods.py.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tests.cluster.kuberay_raycluster import AUTH_TOKEN_KEY, DASHBOARD_PORT, RayClusterStandIn
from tests.cluster.kuberay_submitter import dashboard_url, submitter_job
from tests.cluster.ray_job_spec import fit_cpu_to_node
from tests.cluster.ray_pods import pod_log
from tests.fixtures._kube_cluster import KubeCluster
from tests.fixtures.kuberay_standin import KubeRayStandIn


def pod_ready(pod: dict[str, Any]) -> bool:
    """Running with every container ready."""
    statuses = pod["status"].get("containerStatuses") or []
    return pod["status"].get("phase") == "Running" and all(s.get("ready") for s in statuses)


def cluster_token(kube: KubeCluster, cluster: RayClusterStandIn) -> str:
    """The cluster's Ray auth token, from the Secret KubeRay made for it."""
    path = f"/api/v1/namespaces/{cluster.namespace}/secrets/{cluster.name}"
    secret = kube.request("GET", path).body
    return base64.b64decode(secret["data"][AUTH_TOKEN_KEY]).decode()


def dashboard_healthy(kube: KubeCluster, cluster: RayClusterStandIn, head_ip: str) -> bool:
    """The head's dashboard answers `/api/gcs_healthz` (with the cluster's token)."""
    request = urllib.request.Request(f"http://{head_ip}:{DASHBOARD_PORT}/api/gcs_healthz")
    if cluster.auth:
        request.add_header("Authorization", f"Bearer {cluster_token(kube, cluster)}")
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return b"success" in response.read()
    except (OSError, urllib.error.URLError):
        return False


@dataclass
class PodsRayJobStandIn(KubeRayStandIn):
    """KubeRay's RayJob controller on real pods (see the module docstring)."""

    outcome: str = "execute"
    interval_s: float = 2.0
    clusters: dict[str, RayClusterStandIn] = field(default_factory=dict)
    """RayJob name -> its running cluster."""
    recreated_workers: list[str] = field(default_factory=list)
    """Worker pods re-created after a deletion, in order."""

    def _create_cluster(self, rayjob: dict[str, Any], cluster: str) -> None:
        spec = fit_cpu_to_node(rayjob["spec"]["rayClusterSpec"])
        standin = RayClusterStandIn(self.kube, self.namespace, cluster, spec)
        self.clusters[rayjob["metadata"]["name"]] = standin
        standin.create()

    def _cluster_ready(self, rayjob: dict[str, Any]) -> bool:
        cluster = self.clusters.get(rayjob["metadata"]["name"])
        if cluster is None:
            return False
        pods = [p for p in cluster.pods() if not p["metadata"].get("deletionTimestamp")]
        expected = 1 + sum(
            int(g.get("replicas", 1)) for g in cluster.spec.get("workerGroupSpecs", [])
        )
        if len(pods) != expected or not all(pod_ready(p) for p in pods):
            return False
        (head,) = [p for p in pods if p["metadata"]["labels"]["ray.io/node-type"] == "head"]
        return dashboard_healthy(self.kube, cluster, head["status"]["podIP"])

    def _launch(self, rayjob: dict[str, Any]) -> None:
        name = rayjob["metadata"]["name"]
        cluster = self.clusters[name]
        job_id = (rayjob.get("status") or {})["jobId"]
        body = submitter_job(rayjob, cluster.name, job_id, auth=cluster.auth)
        response = self.kube.request(
            "POST", f"/apis/batch/v1/namespaces/{self.namespace}/jobs", body
        )
        if response.status != 201:
            raise RuntimeError(f"creating the submitter Job of {name}: {response.body}")
        self._write(rayjob, dashboardURL=dashboard_url(cluster.name, self.namespace))

    def _exit_code(self, rayjob: dict[str, Any]) -> int | None:
        name = rayjob["metadata"]["name"]
        cluster = self.clusters.get(name)
        if cluster is None:
            return None
        self.recreated_workers += cluster.reconcile()
        path = f"/apis/batch/v1/namespaces/{self.namespace}/jobs/{name}"
        response = self.kube.request("GET", path)
        if response.status == 404:  # e.g. resumed after a suspend
            self._launch(rayjob)
            return None
        for condition in response.body.get("status", {}).get("conditions") or []:
            if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
                return 0 if condition["type"] == "Complete" else 1
        return None

    def entrypoint_log(self, name: str) -> str:
        """The submitter pods' logs (what `ray job submit` streamed of the entrypoint)."""
        path = f"/api/v1/namespaces/{self.namespace}/pods?labelSelector=job-name={name}"
        pods = self.kube.request("GET", path).body.get("items", [])
        return "\n".join(
            f"=== {p['metadata']['name']}\n"
            + pod_log(self.kube, self.namespace, p["metadata"]["name"])
            for p in pods
        )

    def _kill(self, name: str) -> None:
        base = f"/apis/batch/v1/namespaces/{self.namespace}/jobs/{name}"
        self.kube.request("DELETE", f"{base}?propagationPolicy=Background")
        cluster = self.clusters.pop(name, None)
        if cluster is not None:
            cluster.delete()

    def stop(self) -> None:
        """Stop the control loop, then delete every submitter Job and cluster it made."""
        super().stop()
        for name in list(self.clusters):
            self._kill(name)
