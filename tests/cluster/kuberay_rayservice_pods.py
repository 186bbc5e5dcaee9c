"""A stand-in for KubeRay's RayService controller that serves a RayService on real Ray pods.

IT IS NOT KUBERAY. KubeRay cannot run on this node; this mirrors what its RayService
controller (ray-operator/controllers/ray/rayservice_controller.go, common/service.go and
common/pod.go, v1.5) does for a new RayService, one reconcile every 2 s
(`ServiceDefaultRequeueDuration`) while `wait_running` waits:

- the RayCluster `<rayservice>-<5 random characters>` (`GenerateRayClusterName`) from
  `spec.rayClusterConfig`, built by kuberay_raycluster.RayClusterStandIn exactly as for a
  RayJob (token Secret, head Service, head and worker pods, probes), plus what `BuildPod` adds
  for a RayService: the label `ray.io/serve` ("true" on workers, "false" on the head until the
  controller sets it), and on workers a readiness probe that also asks the Serve proxy
  (`wget ... http://localhost:8000/-/healthz | grep success`, failure threshold 1);
- once the head pod is Running and ready (`reconcileServe`; the stand-in also waits for the
  dashboard's `/api/gcs_healthz`, as kuberay_rayjob_pods does), `serveConfigV2` converted
  from YAML to JSON is PUT to the dashboard's `/api/serve/applications/` on port 8265, with
  `x-ray-authorization: Bearer <cluster token>` when `authOptions.mode` is `token`; it is
  PUT again whenever `serveConfigV2` differs from the last one submitted (the config cache);
- every reconcile GETs `/api/serve/applications/?api_type=declarative`; the cluster is ready
  when every application is RUNNING (`getAndCheckServeStatus`);
- the head's `ray.io/serve` label follows its proxy's `GET :8000/-/healthz` (200 -> "true",
  `updateHeadPodServeLabel`);
- once ready, the serve Service `<rayservice>-serve-svc` (labels `ray.io/originated-from-cr-name`,
  `ray.io/originated-from-crd: RayService`, `ray.io/serve: <rayservice>-serve`; selector
  `ray.io/cluster: <cluster>` and `ray.io/serve: "true"`; port `serve` 8000);
- the status as `calculateStatus` writes it: the pending cluster's name, promoted to
  `activeServiceStatus` once ready, its `applicationStatuses` (status, message,
  `serveDeploymentStatuses`),
  `numServeEndpoints` (ready addresses behind the serve Service), conditions `Ready`
  (`Initializing` -> `NonZeroServeEndpoints`) and `UpgradeInProgress` (`NoPendingCluster`),
  and `serviceStatus: Running` exactly when Ready is True.

Differences, on purpose: no RayCluster object is written (the pods, Services and Secret are
made directly, as the RayJob stand-in does); the dashboard and the head's proxy are asked at
the head pod's address (KubeRay asks the head Service's name, which this host cannot resolve);
the node's CPU fitting of ray_job_spec.fit_cpu_to_node applies. Not done: the RayService's own
`<rayservice>-head-svc`, zero-downtime upgrades (a second cluster when `rayClusterConfig`
changes), unhealthy-threshold restarts, the in-tree autoscaler (refused when enabled).
"""

from __future__ import annotations

import json
import secrets
import string
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import yaml

from tests.cluster.kuberay_raycluster import DASHBOARD_PORT, RayClusterStandIn
from tests.cluster.kuberay_rayjob_pods import cluster_token, dashboard_healthy, pod_ready
from tests.cluster.ray_job_spec import fit_cpu_to_node
from tests.fixtures._kube_cluster import KubeCluster

SERVE_PORT = 8000
SERVE_LABEL = "ray.io/serve"
SERVE_PROBE = "wget --tries 1 -T 2 -q -O- http://localhost:{port}/-/healthz | grep success"
SERVE_READINESS_FAILURE_THRESHOLD = 1
REQUEUE_S = 2.0
APPLICATIONS_PATH = "/api/serve/applications/"


def serve_service_name(rayservice: str) -> str:
    """KubeRay's `GenerateServeServiceName`: `<rayservice>-serve-svc`."""
    return f"{rayservice}-serve-svc"


@dataclass
class ServeClusterStandIn(RayClusterStandIn):
    """A RayService's cluster: RayClusterStandIn plus the serve label and worker probe."""

    def _pod(self, node_type: str, group: str, group_spec: dict[str, Any]) -> dict[str, Any]:
        pod = super()._pod(node_type, group, group_spec)
        pod["metadata"]["labels"][SERVE_LABEL] = "true" if node_type == "worker" else "false"
        probe = pod["spec"]["containers"][0].get("readinessProbe")
        if node_type == "worker" and probe and "exec" in probe:
            command = probe["exec"]["command"]
            command[-1] += " && " + SERVE_PROBE.format(port=SERVE_PORT)
            probe["failureThreshold"] = SERVE_READINESS_FAILURE_THRESHOLD
        return pod


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RayServiceStandIn:
    """KubeRay's RayService controller for one RayService (see the module docstring)."""

    kube: KubeCluster
    namespace: str
    name: str
    cluster: ServeClusterStandIn | None = None
    submitted_config: str = ""
    applications: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)
    """(seconds since the first reconcile, what happened), for the report."""
    _started: float = 0.0

    @property
    def _path(self) -> str:
        return f"/apis/ray.io/v1/namespaces/{self.namespace}/rayservices/{self.name}"

    def _event(self, text: str) -> None:
        if self.events and self.events[-1][1] == text:
            return
        self.events.append((round(time.monotonic() - self._started, 1), text))

    def rayservice(self) -> dict[str, Any]:
        response = self.kube.request("GET", self._path)
        assert response.status == 200, response.body
        return dict(response.body)

    def _dashboard(self, head_ip: str, method: str, path: str, body: bytes | None = None) -> Any:
        assert self.cluster is not None
        request = urllib.request.Request(
            f"http://{head_ip}:{DASHBOARD_PORT}{path}", data=body, method=method
        )
        request.add_header("Content-Type", "application/json")
        if self.cluster.auth:
            request.add_header(
                "x-ray-authorization", f"Bearer {cluster_token(self.kube, self.cluster)}"
            )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        return json.loads(text) if text.strip() else None

    def _write(self, **status: Any) -> None:
        status["lastUpdateTime"] = _now()
        response = self.kube.request(
            "PATCH", f"{self._path}/status", {"status": status},
            content_type="application/merge-patch+json",
        )  # fmt: skip
        assert response.status == 200, f"RayService status patch: {response.body}"

    def _conditions(self, ready: bool, generation: int) -> list[dict[str, Any]]:
        reason, message = (
            ("NonZeroServeEndpoints", "Number of serve endpoints is greater than 0") if ready
            else ("Initializing", "RayService is initializing")
        )  # fmt: skip
        upgrade = (("NoPendingCluster", "Active Ray cluster exists and no pending Ray cluster")
                   if ready else ("Initializing", "RayService is initializing"))  # fmt: skip
        return [
            {"type": "Ready", "status": "True" if ready else "False", "reason": reason,
             "message": message, "lastTransitionTime": _now(), "observedGeneration": generation},
            {"type": "UpgradeInProgress", "status": "False", "reason": upgrade[0],
             "message": upgrade[1], "lastTransitionTime": _now(),
             "observedGeneration": generation},
        ]  # fmt: skip

    def _create_cluster(self, spec: dict[str, Any]) -> None:
        if spec.get("enableInTreeAutoscaling"):
            raise NotImplementedError("the stand-in has no autoscaler: disable it")
        suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
        self.cluster = ServeClusterStandIn(
            self.kube, self.namespace, f"{self.name}-{suffix}", fit_cpu_to_node(spec)
        )
        self.cluster.create()
        self._event(f"created RayCluster {self.cluster.name}")
        self._write(
            pendingServiceStatus={"rayClusterName": self.cluster.name},
            conditions=self._conditions(False, self.rayservice()["metadata"]["generation"]),
            serviceStatus="NotRunning", numServeEndpoints=0,
        )  # fmt: skip

    def _head(self) -> dict[str, Any] | None:
        assert self.cluster is not None
        heads = [p for p in self.cluster.pods("head") if not p["metadata"].get("deletionTimestamp")]
        return heads[0] if heads and pod_ready(heads[0]) else None

    def _label_head(self, head: dict[str, Any]) -> None:
        try:
            url = f"http://{head['status']['podIP']}:{SERVE_PORT}/-/healthz"
            with urllib.request.urlopen(url, timeout=2) as response:
                healthy = response.status == 200
        except (OSError, urllib.error.URLError):
            healthy = False
        label = "true" if healthy else "false"
        if head["metadata"]["labels"].get(SERVE_LABEL) != label:
            path = f"/api/v1/namespaces/{self.namespace}/pods/{head['metadata']['name']}"
            patch = {"metadata": {"labels": {SERVE_LABEL: label}}}
            self.kube.request("PATCH", path, patch, content_type="application/merge-patch+json")
            self._event(f"head pod {SERVE_LABEL}={label}")

    def _serve_service(self) -> None:
        assert self.cluster is not None
        name = serve_service_name(self.name)
        base = f"/api/v1/namespaces/{self.namespace}/services"
        if self.kube.request("GET", f"{base}/{name}").status == 200:
            return
        body = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": self.namespace, "labels": {
                "ray.io/originated-from-cr-name": self.name,
                "ray.io/originated-from-crd": "RayService",
                SERVE_LABEL: f"{self.name}-serve"}},
            "spec": {"selector": {"ray.io/cluster": self.cluster.name, SERVE_LABEL: "true"},
                     "ports": [{"name": "serve", "port": SERVE_PORT, "targetPort": SERVE_PORT,
                                "protocol": "TCP"}]},
        }  # fmt: skip
        response = self.kube.request("POST", base, body)
        assert response.status == 201, response.body
        self._event(f"created Service {name}")

    def serve_endpoints(self) -> list[str]:
        """The ready addresses behind the serve Service (one per pod)."""
        path = f"/api/v1/namespaces/{self.namespace}/endpoints/{serve_service_name(self.name)}"
        response = self.kube.request("GET", path)
        if response.status != 200:
            return []
        subsets = response.body.get("subsets") or []
        return sorted({a["ip"] for s in subsets for a in s.get("addresses") or []})

    def _serve_applications(self, head_ip: str, config: str) -> dict[str, Any]:
        """PUT `config` when it differs from the last one submitted, then the applications'
        statuses as KubeRay copies them into the RayService status."""
        if config != self.submitted_config:
            payload = json.dumps(yaml.safe_load(config)).encode()
            self._dashboard(head_ip, "PUT", APPLICATIONS_PATH, payload)
            self.submitted_config = config
            self._event("PUT serveConfigV2 to the dashboard")
        details = self._dashboard(head_ip, "GET", f"{APPLICATIONS_PATH}?api_type=declarative")
        return {
            (name or "default"): {
                "status": app.get("status", ""), "message": app.get("message", ""),
                "serveDeploymentStatuses": {
                    d: {"status": v.get("status", ""), "message": v.get("message", "")}
                    for d, v in (app.get("deployments") or {}).items()},
            }
            for name, app in ((details or {}).get("applications") or {}).items()
        }  # fmt: skip

    def reconcile(self) -> bool:
        """One pass of the controller; True once the RayService is Running."""
        rayservice = self.rayservice()
        if self.cluster is None:
            self._create_cluster(rayservice["spec"]["rayClusterConfig"])
            return False
        head = self._head()
        if head is None or not dashboard_healthy(self.kube, self.cluster, head["status"]["podIP"]):
            return False
        head_ip = head["status"]["podIP"]
        self._label_head(head)
        try:
            apps = self._serve_applications(head_ip, rayservice["spec"]["serveConfigV2"])
        except OSError as error:  # e.g. the dashboard not answering yet: requeue, as KubeRay
            self._event(f"dashboard: {error}")
            return False
        if apps != self.applications:
            self._event(f"applications { ({k: v['status'] for k, v in apps.items()}) }")
            if self.applications or apps:
                pending = {"rayClusterName": self.cluster.name, "applicationStatuses": apps}
                self._write(pendingServiceStatus=pending)
        self.applications = apps
        if not apps or any(a["status"] != "RUNNING" for a in apps.values()):
            return False
        self._serve_service()
        endpoints = self.serve_endpoints()
        ready, generation = bool(endpoints), rayservice["metadata"]["generation"]
        self._write(
            activeServiceStatus={"rayClusterName": self.cluster.name,
                                 "applicationStatuses": apps},
            pendingServiceStatus={"rayClusterName": None, "applicationStatuses": None},
            numServeEndpoints=len(endpoints), observedGeneration=generation,
            conditions=self._conditions(ready, generation),
            serviceStatus="Running" if ready else "NotRunning",
        )  # fmt: skip
        return ready

    def wait_running(self, timeout_s: float) -> None:
        """Reconcile every 2 s until `serviceStatus` is Running; fails with the events at the
        deadline or at once when an application is DEPLOY_FAILED (KubeRay would keep trying)."""
        self._started = time.monotonic()
        deadline = self._started + timeout_s
        while not self.reconcile():
            failed = {k: v for k, v in self.applications.items() if v["status"] == "DEPLOY_FAILED"}
            assert not failed, f"RayService {self.name}: {failed}\n{self.events}"
            assert time.monotonic() < deadline, (
                f"RayService {self.name} not Running after {timeout_s:.0f} s: {self.events}\n"
                f"applications {self.applications}"
            )
            time.sleep(REQUEUE_S)
        self._event("serviceStatus Running")

    def delete(self) -> None:
        """Delete the serve Service and the cluster (the RayService's owned objects)."""
        base = f"/api/v1/namespaces/{self.namespace}/services"
        self.kube.request("DELETE", f"{base}/{serve_service_name(self.name)}")
        if self.cluster is not None:
            self.cluster.delete()
