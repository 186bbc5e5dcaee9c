"""Helpers of the Ray-pod tests: the trainer image on the node, waiting for pods, a probe pod.

The probe is a one-shot pod from the trainer image that asks the cluster's GCS, through the
head Service's DNS name and with the cluster's token, which Ray nodes are alive (`ray status`
and the GCS node table: the image's minimal Ray has no dashboard HTTP API to ask).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from tests.cluster.images import LocalImage, local_images
from tests.cluster.kuberay_raycluster import auth_env, head_fqdn
from tests.cluster.node_cluster import NodeCluster
from tests.fixtures._kube_cluster import KubeCluster

PROBE_MARK = "RAY-NODES-JSON "
_RAY_ERROR = re.compile(
    r"\] \(\w+\) .*\b(Check failed|error|Error|WrongClusterID|Unauthenticated)|^\[[^]]* [EF] "
)
_PROBE = """
import json, subprocess, sys, time
import ray._private.state as state
from ray._raylet import GcsClientOptions
address, expected, deadline = sys.argv[1] + ":6379", int(sys.argv[2]), time.time() + 240
while True:  # until `expected` nodes are alive or the deadline passes; the test judges
    gcs, nodes = state.GlobalState(), []
    try:  # the GCS may not answer yet: the pods have no readiness probes (see the test)
        options = GcsClientOptions.create(address, None, True, True)  # fetches the cluster id
        gcs._initialize_global_state(options)
        nodes = [{"ip": n["NodeManagerAddress"], "alive": n["Alive"],
                  "head": "node:__internal_head__" in n["Resources"],
                  "cpus": n["Resources"].get("CPU", 0.0)} for n in gcs.node_table()]
        gcs.disconnect()
    except Exception as error:
        print("GCS not answering yet:", error)
    if sum(n["alive"] for n in nodes) >= expected or time.time() > deadline:
        break
    time.sleep(3)
status = subprocess.run(["ray", "status", "--address", address], capture_output=True, text=True)
print(status.stdout + status.stderr)
print("RAY-NODES-JSON " + json.dumps(nodes))
"""


def trainer_image(cluster: NodeCluster) -> LocalImage:
    """The trainer image, imported into the node's containerd once per session."""
    if "trainer" not in cluster.images:
        started = time.monotonic()
        cluster.load_images([local_images("trainer")["trainer"]])
        print(f"trainer image imported in {time.monotonic() - started:.0f} s")
    return cluster.images["trainer"]


def wait_running(
    cluster: NodeCluster, namespace: str, selector: str, count: int, timeout_s: float
) -> list[dict[str, Any]]:
    """The `count` pods matching `selector` once all are Running with ready containers."""
    deadline = time.monotonic() + timeout_s
    path = f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}"
    while True:
        pods = [
            p
            for p in cluster.kube.request("GET", path).body["items"]
            if not p["metadata"].get("deletionTimestamp")
        ]
        ready = [
            p
            for p in pods
            if p["status"].get("phase") == "Running"
            and all(c.get("ready") for c in p["status"].get("containerStatuses", []))
        ]
        if len(ready) == count and len(pods) == count:
            return ready
        for pod in pods:
            for status in pod["status"].get("containerStatuses", []):
                terminated = status.get("lastState", {}).get("terminated") or status.get(
                    "state", {}
                ).get("terminated")
                assert not terminated, (
                    f"{pod['metadata']['name']} container {status['name']} ended: {terminated}\n"
                    f"{pod_log(cluster.kube, namespace, pod['metadata']['name'])}\n"
                    f"{ray_session_logs(cluster, pod)}"
                )
        assert time.monotonic() < deadline, (
            f"{selector}: {len(ready)}/{count} Running and ready: "
            f"{[(p['metadata']['name'], p['status']) for p in pods]}"
        )
        time.sleep(2)


def ray_session_logs(cluster: NodeCluster, pod: dict[str, Any], tail: int = 1500) -> str:
    """Tails of Ray's own logs in the pod's `/tmp` emptyDir (a folder of the kubelet's root)."""
    tmp = cluster.work / "kubelet" / "pods" / pod["metadata"]["uid"] / "volumes"
    logs = sorted(tmp.glob("kubernetes.io~empty-dir/tmp/ray/session_*/logs"))
    if not logs:
        return f"(no Ray session logs under {tmp})"
    parts = []
    for name in ("gcs_server.out", "raylet.out", "raylet.err", "dashboard.log"):
        path = logs[-1] / name
        if path.exists():
            text = path.read_text(errors="replace")
            # Ray's own errors (glog " E "/" F " lines, failed checks) first, then the tail.
            errors = [x for x in text.splitlines() if _RAY_ERROR.search(x)][:20]
            parts.append(
                f"--- {pod['metadata']['name']} {name} ---\n" + "\n".join(errors)
                + f"\n...\n{text[-tail:]}"
            )  # fmt: skip
    return "\n".join(parts)


def pod_log(
    kube: KubeCluster, namespace: str, name: str, container: str = "", previous: bool = False
) -> str:
    """The pod's log (one container's when named; the last ended one with `previous`)."""
    query = f"?container={container}" if container else ""
    if previous:
        query += ("&" if query else "?") + "previous=true"
    path = f"/api/v1/namespaces/{namespace}/pods/{name}/log{query}"
    response = kube.request("GET", path)
    return response.body if isinstance(response.body, str) else json.dumps(response.body)


def probe_ray_nodes(
    cluster: NodeCluster, namespace: str, ray_cluster: str, image: LocalImage, expected: int,
    timeout_s: float,
) -> tuple[list[dict[str, Any]], str]:  # fmt: skip
    """(the GCS's node table once `expected` nodes are alive or its wait ends, the probe's
    whole log)."""
    name = f"probe-{int(time.time() * 1000) % 10**8}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [{
                "name": "probe", "image": image.reference, "imagePullPolicy": "Never",
                "command": ["python", "-c", _PROBE, head_fqdn(ray_cluster, namespace),
                            str(expected)],
                "env": [{"name": "HOME", "value": "/tmp"},
                        {"name": "RAY_USAGE_STATS_ENABLED", "value": "0"},
                        *auth_env(ray_cluster)],
                "resources": {"requests": {"cpu": "100m", "memory": "512Mi"},
                              "limits": {"cpu": "500m", "memory": "512Mi"}},
            }],
        },
    }  # fmt: skip
    created = cluster.kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod)
    assert created.status == 201, created.body
    deadline = time.monotonic() + timeout_s
    path = f"/api/v1/namespaces/{namespace}/pods/{name}"
    while True:
        phase = cluster.kube.request("GET", path).body.get("status", {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            break
        assert time.monotonic() < deadline, f"probe pod still {phase}"
        time.sleep(2)
    log = pod_log(cluster.kube, namespace, name)
    cluster.kube.request("DELETE", path)
    assert phase == "Succeeded", f"the probe pod failed:\n{log[-3000:]}"
    line = next((x for x in log.splitlines() if x.startswith(PROBE_MARK)), None)
    assert line is not None, f"the probe printed no node list:\n{log[-3000:]}"
    return json.loads(line[len(PROBE_MARK) :]), log


def ray_pods_report(cluster: NodeCluster, pods: list[dict[str, Any]]) -> str:
    """For failure messages: each pod's restarts, its last ended container's log and Ray's logs."""
    parts = []
    for pod in pods:
        name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
        statuses = pod["status"].get("containerStatuses", [])
        restarts = [c.get("restartCount", 0) for c in statuses]
        ended = [
            {k: t.get(k) for k in ("reason", "exitCode", "finishedAt")}
            for c in statuses
            if (t := (c.get("lastState") or {}).get("terminated"))
        ]  # the reason says OOMKilled when the memory limit ended the container
        previous = (
            pod_log(cluster.kube, namespace, name, previous=True)[-2000:] if any(restarts) else ""
        )
        parts.append(
            f"=== {name} restarts={restarts} last ended={ended}\n{previous}\n"
            f"{ray_session_logs(cluster, pod, 1500)}"
        )
    return "\n".join(parts)


def pods_memory_mb(cluster: NodeCluster) -> int:
    """Memory in use by every pod on the node now (the node's memory cgroup), in MB."""
    usage = Path("/sys/fs/cgroup/memory") / cluster.cgroup_name / "memory.usage_in_bytes"
    return int(usage.read_text()) // 10**6 if usage.exists() else -1
