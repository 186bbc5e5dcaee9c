"""A stand-in for KubeRay's RayCluster controller on the real test node (KubeRay cannot run here).

IT IS NOT KUBERAY. It turns a RayJob's `spec.rayClusterSpec` into the objects KubeRay's
RayCluster controller creates (ray-operator/controllers/ray/common/pod.go and service.go, v1.x),
with the same names, labels, env and `ray start` commands, so the pod templates that
`tuneforge_operator.builder` writes run as they would under KubeRay:

- a Secret `<cluster>` holding `auth_token` when `authOptions.mode` is `token`; every Ray
  container gets `RAY_AUTH_MODE=token` and `RAY_AUTH_TOKEN` from it;
- the head Service `<cluster>-head-svc` (selector `ray.io/cluster`, `ray.io/node-type=head`,
  the head container's ports). KubeRay v1.1+ makes it headless; this node's DNS answers
  ClusterIPs only (tests/cluster/cluster_dns.py), so here it has a ClusterIP;
- the head pod `<cluster>-head-<suffix>` and `replicas` worker pods per group
  `<cluster>-<group>-worker-<suffix>` (generateName), labelled `ray.io/cluster`,
  `ray.io/node-type`, `ray.io/group` (`headgroup` for the head), `ray.io/identifier`,
  `ray.io/is-ray-node=yes`, `app.kubernetes.io/name=kuberay`,
  `app.kubernetes.io/created-by=kuberay-operator`, over the template's own labels;
- the Ray container (index 0) runs `/bin/bash -lc -- "ulimit -n 65536; ray start ..."`: the
  `rayStartParams` plus KubeRay's defaults (`--block`, `--metrics-export-port=8080`,
  `--dashboard-agent-listen-port=52365`, head `--dashboard-host=0.0.0.0`, `--num-cpus` and
  `--memory` from the limits when unset, workers `--address=<head svc FQDN>:6379`), env
  `RAY_CLUSTER_NAME`, `RAY_CLOUD_INSTANCE_ID`, `KUBERAY_GEN_RAY_START_CMD`, `RAY_PORT`,
  `RAY_ADDRESS` (head `127.0.0.1:6379`, workers the FQDN), `RAY_USAGE_STATS_KUBERAY_IN_USE`,
  `REDIS_PASSWORD`, `RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE`, and on workers `FQ_RAY_IP` and
  `RAY_IP`; the `metrics` port 8080 is added;
- a `/dev/shm` memory emptyDir (`shared-mem`, sized by the memory request) unless mounted;
- workers get the `wait-gcs-ready` init container (the Ray container's image, env, mounts
  and securityContext; 200m/256Mi) looping on `ray health-check` against the head Service;
- KubeRay's readiness/liveness probes (`wget` of the dashboard agent's
  `/api/local_raylet_healthz` on 52365, the head also the dashboard's `/api/gcs_healthz`).

`inject_probes` is KubeRay's own `ENABLE_PROBES_INJECTION` operator setting (on by default,
as in KubeRay). The Ray containers always run under KubeRay's `bash -lc`: the images keep their
venv first on PATH in a login shell (docs/pods.md, "What real Ray pods found").

Not done (yet): autoscaling, GCS fault tolerance, suspend, RayJob status; `reconcile` creates
missing workers when called (KubeRay re-creates deleted worker pods).
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass
from typing import Any

from tests.cluster.cluster_dns import CLUSTER_DOMAIN
from tests.fixtures._kube_cluster import KubeCluster

GCS_PORT = 6379
METRICS_PORT = 8080
DASHBOARD_AGENT_LISTEN_PORT = 52365
HEAD_GROUP = "headgroup"
AUTH_TOKEN_KEY = "auth_token"
DASHBOARD_PORT = 8265
WAIT_GCS_RESOURCES = {"cpu": "200m", "memory": "256Mi"}
_WGET = "wget -T 2 -q -O- http://localhost:{port}/{path} | grep success"


def head_service_name(cluster: str) -> str:
    """KubeRay's head Service: `<cluster>-head-svc`."""
    return f"{cluster}-head-svc"


def head_fqdn(cluster: str, namespace: str) -> str:
    """The head Service's in-cluster name (KubeRay's `FQ_RAY_IP`)."""
    return f"{head_service_name(cluster)}.{namespace}.svc.{CLUSTER_DOMAIN}"


def _labels(cluster: str, node_type: str, group: str, template: dict[str, Any]) -> dict[str, str]:
    labels = dict(template.get("metadata", {}).get("labels") or {})
    labels.update(
        {
            "ray.io/is-ray-node": "yes",
            "ray.io/cluster": cluster,
            "ray.io/node-type": node_type,
            "ray.io/group": group,
            "ray.io/identifier": f"{cluster}-{node_type}",
            "app.kubernetes.io/name": "kuberay",
            "app.kubernetes.io/created-by": "kuberay-operator",
        }
    )
    return labels


def _quantity_value(quantity: str) -> int:
    """A Kubernetes quantity rounded up to an integer, as resource.Quantity.Value() does."""
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6,
                "G": 10**9, "T": 10**12, "m": 10**-3}  # fmt: skip
    for suffix, factor in suffixes.items():
        if quantity.endswith(suffix):
            value = float(quantity[: -len(suffix)]) * factor
            return int(value) if value == int(value) else int(value) + 1
    value = float(quantity)
    return int(value) if value == int(value) else int(value) + 1


def ray_start_command(
    node_type: str, params: dict[str, str], limits: dict[str, str], address: str
) -> str:
    """KubeRay's generated `ray start [--head] --k=v ...` (setMissingRayStartParams and
    generateRayStartCommand; flags sorted here, KubeRay's map order is random)."""
    params = dict(params)
    if node_type == "worker":
        params.setdefault("address", address)
    else:
        params.setdefault("dashboard-host", "0.0.0.0")
    params.setdefault("metrics-export-port", str(METRICS_PORT))
    params["block"] = "true"
    params.setdefault("dashboard-agent-listen-port", str(DASHBOARD_AGENT_LISTEN_PORT))
    if "num-cpus" not in params and limits.get("cpu"):
        params["num-cpus"] = str(_quantity_value(limits["cpu"]))
    if "memory" not in params and limits.get("memory"):
        params["memory"] = str(_quantity_value(limits["memory"]))
    flags = []
    for key in sorted(params):
        value = params[key]
        if value.lower() in ("true", "false") and key not in ("log-color", "include-dashboard"):
            if value.lower() == "true":
                flags.append(f"--{key}")
        else:
            flags.append(f"--{key}={value}")
    head = " --head" if node_type == "head" else ""
    return f"ray start{head} {' '.join(flags)}"


def _field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def kuberay_env(cluster: str, namespace: str, node_type: str, start: str) -> list[dict]:
    """setContainerEnvVars: what KubeRay appends to the Ray container's env."""
    fqdn = head_fqdn(cluster, namespace)
    env: list[dict[str, Any]] = []
    if node_type == "worker":
        env += [{"name": "FQ_RAY_IP", "value": fqdn},
                {"name": "RAY_IP", "value": head_service_name(cluster)}]  # fmt: skip
    ip = fqdn if node_type == "worker" else "127.0.0.1"
    return env + [
        _field("RAY_CLUSTER_NAME", "metadata.labels['ray.io/cluster']"),
        _field("RAY_CLOUD_INSTANCE_ID", "metadata.name"),
        {"name": "KUBERAY_GEN_RAY_START_CMD", "value": start},
        {"name": "RAY_PORT", "value": str(GCS_PORT)},
        {"name": "RAY_ADDRESS", "value": f"{ip}:{GCS_PORT}"},
        {"name": "RAY_USAGE_STATS_KUBERAY_IN_USE", "value": "1"},
        {"name": "REDIS_PASSWORD", "value": ""},
        {"name": "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE", "value": "1"},
    ]


def auth_env(cluster: str) -> list[dict[str, Any]]:
    """KubeRay's token-auth variables: the mode and the token from the cluster's Secret."""
    return [
        {"name": "RAY_AUTH_MODE", "value": "token"},
        {"name": "RAY_AUTH_TOKEN",
         "valueFrom": {"secretKeyRef": {"name": cluster, "key": AUTH_TOKEN_KEY}}},
    ]  # fmt: skip


def _probe(node_type: str, failure_threshold: int) -> dict[str, Any]:
    checks = [_WGET.format(port=DASHBOARD_AGENT_LISTEN_PORT, path="api/local_raylet_healthz")]
    if node_type == "head":
        checks.append(_WGET.format(port=DASHBOARD_PORT, path="api/gcs_healthz"))
    return {
        "exec": {"command": ["bash", "-c", " && ".join(checks)]},
        "initialDelaySeconds": 10, "timeoutSeconds": 2, "periodSeconds": 5,
        "successThreshold": 1, "failureThreshold": failure_threshold,
    }  # fmt: skip


def build_pod(
    cluster: str, namespace: str, node_type: str, group: str, group_spec: dict[str, Any],
    auth: bool, *, inject_probes: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """The pod KubeRay creates for one head or worker of `group_spec` (see module docstring)."""
    template = copy.deepcopy(group_spec["template"])
    spec = template["spec"]
    container = spec["containers"][0]
    if auth:  # KubeRay adds the token to the template's Ray container first
        container["env"] = [*container.get("env", []), *auth_env(cluster)]
    resources = container.get("resources", {})
    fqdn = head_fqdn(cluster, namespace)
    if node_type == "worker":
        spec["initContainers"] = [*spec.get("initContainers", []), _wait_gcs_ready(container, fqdn)]
    ports = container.setdefault("ports", [])
    if not any(p.get("name") == "metrics" for p in ports):
        ports.append({"name": "metrics", "containerPort": METRICS_PORT})
    mounts = container.setdefault("volumeMounts", [])
    if not any(m["mountPath"] == "/dev/shm" for m in mounts):
        shm: dict[str, Any] = {"medium": "Memory"}
        memory = resources.get("requests", {}).get("memory") or resources.get("limits", {}).get(
            "memory"
        )
        if memory:
            shm["sizeLimit"] = memory
        spec.setdefault("volumes", []).append({"name": "shared-mem", "emptyDir": shm})
        mounts.append({"name": "shared-mem", "mountPath": "/dev/shm"})
    start = ray_start_command(
        node_type, group_spec.get("rayStartParams") or {}, resources.get("limits", {}),
        f"{fqdn}:{GCS_PORT}",
    )  # fmt: skip
    container["command"] = ["/bin/bash", "-lc", "--"]
    container["args"] = [f"ulimit -n 65536; {start}"]
    container["env"] = [
        *container.get("env", []),
        *kuberay_env(cluster, namespace, node_type, start),
    ]
    if inject_probes:
        container.setdefault("readinessProbe", _probe(node_type, 10))
        container.setdefault("livenessProbe", _probe(node_type, 120))
    prefix = f"{cluster}-head-" if node_type == "head" else f"{cluster}-{group}-worker-"
    metadata = {
        "generateName": prefix,
        "namespace": namespace,
        "labels": _labels(cluster, node_type, group, template),
    }
    if template.get("metadata", {}).get("annotations"):
        metadata["annotations"] = dict(template["metadata"]["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _wait_gcs_ready(ray: dict[str, Any], fqdn: str) -> dict[str, Any]:
    """KubeRay's `wait-gcs-ready` init container of every worker (env and mounts are the Ray
    container's as the template gave them, plus FQ_RAY_IP and RAY_IP)."""
    script = (
        "SECONDS=0; while true; do "
        f"if ray health-check --address {fqdn}:{GCS_PORT} > /dev/null 2>&1; then "
        'echo "GCS is ready."; break; fi; '
        'echo "$SECONDS seconds elapsed: Waiting for GCS to be ready."; sleep 5; done'
    )
    init: dict[str, Any] = {
        "name": "wait-gcs-ready",
        "image": ray["image"],
        "imagePullPolicy": ray.get("imagePullPolicy", "IfNotPresent"),
        "command": ["/bin/bash", "-lc", "--"],
        "args": [script],
        "env": [
            *copy.deepcopy(ray.get("env", [])),
            {"name": "FQ_RAY_IP", "value": fqdn},
            {"name": "RAY_IP", "value": fqdn.split(".", 1)[0]},
        ],  # fmt: skip
        "volumeMounts": copy.deepcopy(ray.get("volumeMounts", [])),
        "resources": {"requests": dict(WAIT_GCS_RESOURCES), "limits": dict(WAIT_GCS_RESOURCES)},
    }
    if ray.get("envFrom"):
        init["envFrom"] = copy.deepcopy(ray["envFrom"])
    if ray.get("securityContext"):
        init["securityContext"] = copy.deepcopy(ray["securityContext"])
    return init


def head_service(cluster: str, namespace: str, head_pod: dict[str, Any]) -> dict[str, Any]:
    """KubeRay's head Service (ClusterIP here, see the module docstring)."""
    ports = [
        {"name": p["name"], "port": p["containerPort"], "targetPort": p["containerPort"],
         "protocol": "TCP"}
        for p in head_pod["spec"]["containers"][0].get("ports", [])
    ]  # fmt: skip
    labels = {"ray.io/cluster": cluster, "ray.io/node-type": "head",
              "app.kubernetes.io/name": "kuberay",
              "app.kubernetes.io/created-by": "kuberay-operator"}  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": head_service_name(cluster), "namespace": namespace,
                     "labels": labels},
        "spec": {"selector": {"ray.io/cluster": cluster, "ray.io/node-type": "head"},
                 "ports": ports},
    }  # fmt: skip


@dataclass
class RayClusterStandIn:
    """Creates and deletes the Ray cluster of one `rayClusterSpec` like KubeRay (see above)."""

    kube: KubeCluster
    namespace: str
    name: str
    spec: dict[str, Any]
    inject_probes: bool = True
    """KubeRay's ENABLE_PROBES_INJECTION (default true)."""

    def _pod(self, node_type: str, group: str, group_spec: dict[str, Any]) -> dict[str, Any]:
        return build_pod(
            self.name, self.namespace, node_type, group, group_spec, self.auth,
            inject_probes=self.inject_probes,
        )  # fmt: skip

    @property
    def auth(self) -> bool:
        return (self.spec.get("authOptions") or {}).get("mode") == "token"

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.kube.request("POST", f"/api/v1/namespaces/{self.namespace}/{path}", body)
        if response.status != 201:
            raise RuntimeError(f"creating {body['kind']} for {self.name}: {response.body}")
        return response.body

    def create(self) -> None:
        """The Secret (token auth), the head pod and Service, and every group's workers."""
        if self.auth:
            token = secrets.token_hex(32)
            self._post("secrets", {
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": self.name, "labels": {"ray.io/cluster": self.name}},
                "stringData": {AUTH_TOKEN_KEY: token},
            })  # fmt: skip
        head = self._pod("head", HEAD_GROUP, self.spec["headGroupSpec"])
        self._post("services", head_service(self.name, self.namespace, head))
        self._post("pods", head)
        self.reconcile()

    def pods(self, node_type: str | None = None) -> list[dict[str, Any]]:
        """This cluster's pods (of one node type when given)."""
        selector = f"ray.io/cluster={self.name}"
        if node_type:
            selector += f",ray.io/node-type={node_type}"
        path = f"/api/v1/namespaces/{self.namespace}/pods?labelSelector={selector}"
        return self.kube.request("GET", path).body["items"]

    def reconcile(self) -> list[str]:
        """Create the workers each group lacks (KubeRay re-creates deleted workers); returns
        the names of the pods it created."""
        created = []
        live = [
            p for p in self.pods("worker") if not p["metadata"].get("deletionTimestamp")
        ]  # fmt: skip
        for group in self.spec.get("workerGroupSpecs", []):
            name = group["groupName"]
            have = sum(1 for p in live if p["metadata"]["labels"].get("ray.io/group") == name)
            for _ in range(int(group.get("replicas", 1)) - have):
                pod = self._pod("worker", name, group)
                created.append(self._post("pods", pod)["metadata"]["name"])
        return created

    def delete(self) -> None:
        """Delete the pods, the Service and the Secret (KubeRay's cluster deletion)."""
        base = f"/api/v1/namespaces/{self.namespace}"
        for pod in self.pods():
            self.kube.request("DELETE", f"{base}/pods/{pod['metadata']['name']}")
        self.kube.request("DELETE", f"{base}/services/{head_service_name(self.name)}")
        if self.auth:
            self.kube.request("DELETE", f"{base}/secrets/{self.name}")
