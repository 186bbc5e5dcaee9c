"""A Ray cluster from the RayJob's own templates, as real pods on the real node.

The operator's builder writes the RayJob; the KubeRay stand-in (kuberay_raycluster.py, NOT
KubeRay) creates the head pod, its Service and two worker pods from `spec.rayClusterSpec` with
the locally built trainer image; the pods run `ray start` as KubeRay's command line and the
cluster forms over the pod network (workers reach the head through the Service's DNS name).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest

from tests.cluster.kuberay_raycluster import RayClusterStandIn, head_service_name
from tests.cluster.node_cluster import NodeCluster
from tests.cluster.ray_job_spec import WORKERS, fit_cpu_to_node, tiny_rayjob
from tests.cluster.ray_pods import (
    pods_memory_mb,
    probe_ray_nodes,
    ray_pods_report,
    trainer_image,
    wait_running,
)

pytestmark = pytest.mark.cluster

READY_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def ray_cluster(node_cluster: NodeCluster) -> Iterator[RayClusterStandIn]:
    """The stand-in's Ray cluster of the tiny job's RayJob, Running and ready."""
    image = trainer_image(node_cluster)
    namespace = node_cluster.kube.create_namespace("raypods")
    rayjob = tiny_rayjob(namespace, image.reference)
    created = node_cluster.kube.request(
        "POST", f"/apis/ray.io/v1/namespaces/{namespace}/rayjobs",
        {**rayjob, "metadata": {**rayjob["metadata"], "ownerReferences": []}},
    )  # fmt: skip
    assert created.status == 201, created.body  # KubeRay's own CRD keeps every field
    spec = fit_cpu_to_node(created.body["spec"]["rayClusterSpec"])
    name = f"{rayjob['metadata']['name']}-raycluster-{secrets.token_hex(3)[:5]}"
    standin = RayClusterStandIn(node_cluster.kube, namespace, name, spec)
    started = time.monotonic()
    standin.create()
    try:
        selector = f"ray.io/cluster={name}"
        wait_running(node_cluster, namespace, selector, 1 + WORKERS, READY_TIMEOUT_S)
        print(f"head + {WORKERS} workers Running and ready in {time.monotonic() - started:.0f} s; "
              f"pods use {pods_memory_mb(node_cluster)} MB")  # fmt: skip
        yield standin
    finally:
        standin.delete()
        node_cluster.kube.delete_namespace(namespace)


def test_pods_carry_kuberays_names_labels_service_and_env(
    node_cluster: NodeCluster, ray_cluster: RayClusterStandIn
) -> None:
    (head,) = ray_cluster.pods("head")
    workers = ray_cluster.pods("worker")
    assert head["metadata"]["name"].startswith(f"{ray_cluster.name}-head-")
    assert len(workers) == WORKERS
    for pod in workers:
        assert pod["metadata"]["name"].startswith(f"{ray_cluster.name}-workers-worker-")
        assert pod["metadata"]["labels"]["ray.io/group"] == "workers"
        assert pod["metadata"]["labels"]["tuneforge.io/job-name"] == "tiny"  # the template's
    assert head["metadata"]["labels"]["ray.io/group"] == "headgroup"
    service = node_cluster.kube.request(
        "GET",
        f"/api/v1/namespaces/{ray_cluster.namespace}/endpoints/{head_service_name(ray_cluster.name)}",
    ).body
    addresses = [a["ip"] for s in service["subsets"] for a in s["addresses"]]
    assert addresses == [head["status"]["podIP"]], "the head Service does not select the head"
    ports = {p["name"]: p["port"] for s in service["subsets"] for p in s["ports"]}
    assert {"gcs-server": 6379, "dashboard": 8265, "client": 10001}.items() <= ports.items()
    # The builder's securityContext holds on a running container: uid 1000, read-only root.
    assert head["spec"]["securityContext"]["runAsUser"] == 1000
    assert head["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_head_lists_itself_and_two_workers_alive_over_the_pod_network(
    node_cluster: NodeCluster, ray_cluster: RayClusterStandIn
) -> None:
    image = node_cluster.images["trainer"]
    nodes, log = probe_ray_nodes(
        node_cluster, ray_cluster.namespace, ray_cluster.name, image, 1 + WORKERS, 400
    )
    print(log)
    alive = [n for n in nodes if n["alive"]]
    pod_ips = {
        p["status"]["podIP"]: p["metadata"]["labels"]["ray.io/node-type"]
        for p in ray_cluster.pods()
    }
    assert sorted(n["ip"] for n in alive) == sorted(pod_ips), (
        f"{nodes} != {pod_ips}\n{ray_pods_report(node_cluster, ray_cluster.pods())}"
    )
    heads = [n for n in alive if n["head"]]
    assert len(heads) == 1 and pod_ips[heads[0]["ip"]] == "head"
    assert heads[0]["cpus"] == 0.0, "the head must take no training worker (num-cpus 0)"
    assert sorted(n["cpus"] for n in alive if not n["head"]) == [1.0] * WORKERS
