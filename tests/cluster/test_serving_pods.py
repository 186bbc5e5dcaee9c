"""Serving as pods: the chart's RayService serves the adapter a FineTuneJob just trained.

One module, one chart release (operator, trainer and serving images from images.py, pulled
`Never`): the tiny LoRA FineTuneJob is applied and goes through the operator pod, the RayJob
stand-in's head and two worker pods, and MLflow to `Succeeded` (operator_pod_job.py). The
RayJob stand-in is then stopped, which deletes the training pods, and the RayService stand-in
(kuberay_rayservice_pods.py, NOT KubeRay) brings up the chart's RayService: a head and one
worker pod from the serving image, `serveConfigV2` submitted to the head's dashboard, the serve
Service `<rayservice>-serve-svc`. `POST /v1/generate` through that Service returns PNGs: the
same seed twice gives the same image, and `adapters: [{name, alias: candidate}]` (resolved in
MLflow, downloaded from S3 by the replica) changes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.cluster.chart_release import RELEASE, install_chart, ready_operator
from tests.cluster.images import local_images
from tests.cluster.kuberay_rayjob_pods import PodsRayJobStandIn
from tests.cluster.kuberay_rayservice_pods import SERVE_PORT, RayServiceStandIn, serve_service_name
from tests.cluster.node_cluster import NODE_NAME, NodeCluster
from tests.cluster.operator_pod_job import FinishedJob, chart_values, finetunejob, run_finetunejob
from tests.cluster.pod_services import MODEL_URI
from tests.cluster.ray_pods import pods_memory_mb, ray_pods_report, trainer_image
from tests.fixtures.services import MlflowService
from tests.fixtures.serving import generate_png

pytestmark = pytest.mark.cluster

REGISTERED_MODEL = "tiny-serving-pods"
JOB_NAME = "tiny-serve"
SERVING_TIMEOUT_S = 900
PROMPT, SEED = "a photo of sks toy", 7
RAY_MEMORY = "3Gi"
"""Memory of the serving head (GCS, dashboard, Serve controller and proxy) and worker (the
model replica with torch and the tiny pipeline)."""


FAKE_GPU = "tuneforge.io/fake-gpu"
"""The worker group's GPU resource on this node: the chart asks >= 1 GPU per worker pod (its
schema), this node has none, so the node advertises one unit of this extended resource (as a
device plugin would a GPU, Kubernetes' "advertise extended resources" status patch). It only
schedules the pod: Ray's `--num-gpus=1` is a logical resource and the app runs `device: cpu`
with `numGpus: 0`."""


def advertise_fake_gpu(node_cluster: NodeCluster) -> None:
    """One unit of `FAKE_GPU` in the node's capacity."""
    path = f"/api/v1/nodes/{NODE_NAME}/status"
    key = FAKE_GPU.replace("/", "~1")
    patch = [{"op": "add", "path": f"/status/capacity/{key}", "value": "1"}]
    response = node_cluster.kube.request(
        "PATCH", path, patch, content_type="application/json-patch+json"
    )
    assert response.status == 200, response.body


def serving_values(serving: Any) -> dict[str, Any]:
    """`serving` values for this node: the local image, the tiny model from the tier's S3, CPU,
    one fixed replica on one worker pod (its GPU is `FAKE_GPU`), no autoscaler, no PDB
    (policy/v1 is not in 1.20), no API auth. The serving image predates `hotswap.rankBuckets`/`memoryBudgetMB` (stale image,
    docs/pods.md), so those defaults are dropped (null) for the `maxLoraRank` it knows."""
    resources = {"requests": {"cpu": "300m", "memory": RAY_MEMORY},
                 "limits": {"memory": RAY_MEMORY}}  # fmt: skip
    return {
        "enabled": True,
        "image": {"repository": serving.repository, "tag": serving.tag, "pullPolicy": "Never"},
        "auth": {"enabled": False},
        "app": {
            "baseModel": MODEL_URI, "modelName": "tiny", "device": "cpu", "numGpus": 0,
            "numCpus": 1, "numReplicas": 1, "autoscaling": {"enabled": False},
            "limits": {"maxWidth": 128, "maxHeight": 128, "maxSteps": 8},
            "hotswap": {"rankBuckets": None, "memoryBudgetMB": None, "maxLoraRank": 8},
        },
        "clusterAutoscaling": {"enabled": False},
        "podDisruptionBudget": {"enabled": False},
        "head": {"resources": resources},
        "gpuWorkers": {"replicas": 1, "minReplicas": 1, "maxReplicas": 1, "gpusPerWorker": 1,
                       "gpuResourceName": FAKE_GPU,
                       "tolerations": [], "resources": resources, "shmSizeLimit": "1Gi",
                       "cacheSizeLimit": "2Gi"},
    }  # fmt: skip


def pod_memory_mb(node_cluster: NodeCluster, pod: dict[str, Any]) -> int:
    """Memory in use by one pod now (its memory cgroup under the node's), in MB; -1 if absent."""
    root = Path("/sys/fs/cgroup/memory") / node_cluster.cgroup_name
    found = list(root.glob(f"**/pod{pod['metadata']['uid']}/memory.usage_in_bytes"))
    return int(found[0].read_text()) // 10**6 if found else -1


@dataclass
class Served:
    """The trained job and the serve Service's address."""

    job: FinishedJob
    url: str
    standin: RayServiceStandIn


def _serve_url(standin: RayServiceStandIn, node_cluster: NodeCluster) -> str:
    """The serve Service's ClusterIP (kube-proxy's rules answer it from the node's netns); a
    ready endpoint of it if the ClusterIP does not answer (printed)."""
    path = f"/api/v1/namespaces/{standin.namespace}/services/{serve_service_name(standin.name)}"
    cluster_ip = node_cluster.kube.request("GET", path).body["spec"]["clusterIP"]
    url = f"http://{cluster_ip}:{SERVE_PORT}"
    try:
        httpx.get(f"{url}/-/healthz", timeout=5).raise_for_status()
        return url
    except httpx.HTTPError as error:
        endpoint = f"http://{standin.serve_endpoints()[0]}:{SERVE_PORT}"
        print(f"the serve Service's ClusterIP {url} did not answer ({error}); using {endpoint}")
        return endpoint


@pytest.fixture(scope="module")
def served(
    node_cluster: NodeCluster,
    pod_services: MlflowService,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    kube = node_cluster.kube
    trainer = trainer_image(node_cluster)
    started = time.monotonic()
    node_cluster.load_images([local_images("serving")["serving"]])
    serving = node_cluster.images["serving"]
    print(f"serving image imported in {time.monotonic() - started:.0f} s")
    advertise_fake_gpu(node_cluster)
    jobs = kube.create_namespace("jobs")
    release = kube.create_namespace("tuneforge")
    values = chart_values(jobs, pod_services, trainer)
    values["serving"] = serving_values(serving)
    install_chart(node_cluster, release, tmp_path_factory.mktemp("release"), values)
    ready_operator(node_cluster, release)
    rayjobs = PodsRayJobStandIn(kube, jobs).start()
    rayservice = RayServiceStandIn(kube, release, f"{RELEASE}-tuneforge-serving")
    try:
        job = run_finetunejob(
            node_cluster, rayjobs, jobs, release, finetunejob(JOB_NAME, REGISTERED_MODEL)
        )
        assert job.condition("Succeeded").get("status") == "True", (
            f"{job.job.get('status')}\n{job.submitter_log[-6000:]}\n{job.operator_log[-3000:]}"
        )
        rayjobs.stop()  # the training cluster is gone before the serving one starts
        started = time.monotonic()
        try:
            rayservice.wait_running(SERVING_TIMEOUT_S)
        except AssertionError as error:
            pods = rayservice.cluster.pods() if rayservice.cluster else []
            raise AssertionError(f"{error}\n{ray_pods_report(node_cluster, pods)}") from None
        print(f"RayService Running {time.monotonic() - started:.0f} s after the job: "
              f"{rayservice.events}; pods use {pods_memory_mb(node_cluster)} MB")  # fmt: skip
        yield Served(job, _serve_url(rayservice, node_cluster), rayservice)
    finally:
        rayjobs.stop()
        rayservice.delete()
        kube.delete_namespace(jobs)
        kube.delete_namespace(release)


def _generate(url: str, adapters: list[dict[str, Any]]) -> tuple[np.ndarray, httpx.Response]:
    body = {"prompt": PROMPT, "seed": SEED, "steps": 4, "width": 64, "height": 64,
            "adapters": adapters}  # fmt: skip
    return generate_png(url, body, timeout_s=300)


def test_the_rayservice_runs_on_serving_pods(served: Served, node_cluster: NodeCluster) -> None:
    """Head and worker run the serving image; the status says Running with one endpoint."""
    status = served.standin.rayservice()["status"]
    assert status["serviceStatus"] == "Running", status
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "NonZeroServeEndpoints")
    apps = status["activeServiceStatus"]["applicationStatuses"]
    assert apps["tuneforge"]["status"] == "RUNNING", apps
    assert served.standin.cluster is not None
    pods = served.standin.cluster.pods()
    image = node_cluster.images["serving"].reference
    assert sorted(p["metadata"]["labels"]["ray.io/node-type"] for p in pods) == ["head", "worker"]
    assert all(p["spec"]["containers"][0]["image"] == image for p in pods)
    assert status["numServeEndpoints"] >= 1, status
    endpoints = served.standin.serve_endpoints()
    by_ip = {p["status"]["podIP"]: p for p in pods}
    assert endpoints and set(endpoints) <= set(by_ip), (endpoints, sorted(by_ip))
    for pod in pods:
        labels = pod["metadata"]["labels"]
        print(f"{pod['metadata']['name']}: {labels['ray.io/node-type']} ray.io/serve="
              f"{labels.get('ray.io/serve')} endpoint={pod['status']['podIP'] in endpoints} "
              f"memory {pod_memory_mb(node_cluster, pod)} MB")  # fmt: skip


def test_the_served_adapter_changes_the_image(served: Served, node_cluster: NodeCluster) -> None:
    """Through the serve Service: PNGs, repeatable per seed, and the adapter changes them."""
    started = time.monotonic()
    base, _ = _generate(served.url, [])
    adapter = [{"name": REGISTERED_MODEL, "alias": "candidate"}]
    tuned, response = _generate(served.url, adapter)
    base_again, _ = _generate(served.url, [])
    tuned_again, _ = _generate(served.url, adapter)
    print(f"four generate calls through {served.url} took {time.monotonic() - started:.1f} s; "
          f"pods use {pods_memory_mb(node_cluster)} MB")  # fmt: skip
    version = (served.job.job.get("status") or {}).get("mlflow", {}).get("modelVersion")
    assert response.headers["x-adapters"] == f"{REGISTERED_MODEL}/{version}"
    assert np.array_equal(base, base_again), "the base image is not repeatable under one seed"
    assert np.array_equal(tuned, tuned_again), "the adapter image is not repeatable"
    difference = np.abs(base - tuned).mean()
    print(f"mean |base - adapter| = {difference:.2f} levels")
    assert difference > 1.0, f"the adapter barely changed the image (mean |diff| {difference:.3f})"
