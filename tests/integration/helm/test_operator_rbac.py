"""The operator's ServiceAccount, bound by the chart's RBAC on a real apiserver, can do its job
and nothing more: it is refused Secrets (outside its namespace and inside it), Pods, other
namespaces' ConfigMaps, deleting jobs, and (namespaced mode) namespaces it does not watch.

The chart is rendered with `helm template` and its objects are created as the admin, as
`helm install` would. Then every request is made with the ServiceAccount's own token.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures._kube_rest import KubeRest
from tests.fixtures.kube import KubeCluster
from tests.integration.helm.apply import (
    apply_all,
    as_service_account,
    collection_path,
    create,
    delete_all,
    install_chart_crds,
)
from tests.integration.helm.test_rayservice_kuberay import missing_paths
from tests.unit.api.invalid_jobs import valid_manifest
from tests.unit.helm.helmchart import find, is_hook, one, render
from tests.unit.helm.variants import ENDPOINTS

pytestmark = pytest.mark.integration
MERGE = "application/merge-patch+json"


@pytest.fixture
def job_namespaces(kube: KubeCluster) -> Iterator[list[str]]:
    """Two namespaces where users run jobs (the operator's own is `kube_namespace`)."""
    names = [kube.create_namespace("rbac-jobs"), kube.create_namespace("rbac-other")]
    yield names
    for name in names:
        kube.delete_namespace(name)


def _install(
    kube: KubeCluster, chart: Path, namespace: str, values: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    install_chart_crds(kube)
    release = f"r{secrets.token_hex(3)}"
    values = {**ENDPOINTS, **values}
    values["operator"] = {**values.get("operator", {}), "peering": {"name": release}}
    docs = [
        d for d in render(chart, values, release=release, namespace=namespace) if not is_hook(d)
    ]
    return docs, apply_all(kube, docs)


def _status(response: Any) -> int:
    return int(response.status)


def _operator_does_its_job(
    kube: KubeCluster, operator: KubeRest, docs: list[dict[str, Any]], job_ns: str
) -> None:
    """What the operator does for one job, done with the operator's token."""
    from tuneforge.api import FineTuneJob
    from tuneforge.api.runtime import parse_runtimes
    from tuneforge_operator.builder import build_rayjob

    create(
        kube.rest,
        {**valid_manifest("rbac-job"), "metadata": {"name": "rbac-job", "namespace": job_ns}},
    )
    jobs = collection_path("FineTuneJob", job_ns)
    assert _status(operator.request("GET", jobs)) == 200
    assert _status(operator.request("GET", f"{jobs}?watch=1&timeoutSeconds=1")) == 200
    # kopf keeps its bookkeeping in annotations and a finalizer: a merge patch of the job.
    patch = {"metadata": {"annotations": {"tuneforge.io/last-handled-configuration": "{}"}}}
    assert _status(operator.request("PATCH", f"{jobs}/rbac-job", patch, MERGE)) == 200
    status = {"status": {"rayJobName": "rbac-job", "observedGeneration": 1}}
    patched = operator.request("PATCH", f"{jobs}/rbac-job/status", status, MERGE)
    assert _status(patched) == 200 and patched.body["status"]["rayJobName"] == "rbac-job"

    # The runtime comes from the chart's ConfigMap, read with the operator's token.
    configmap = one(docs, "ConfigMap", "-runtimes")["metadata"]
    path = f"{collection_path('ConfigMap', configmap['namespace'])}/{configmap['name']}"
    read = operator.request("GET", path)
    assert _status(read) == 200, read.message
    runtime = parse_runtimes(read.body["data"])["default"]
    assert not isinstance(runtime, str), runtime

    job = FineTuneJob.model_validate(operator.request("GET", f"{jobs}/rbac-job").body)
    rayjob = build_rayjob(job, runtime)
    rayjobs = collection_path("RayJob", job_ns)
    created = operator.request("POST", rayjobs, rayjob)
    assert _status(created) == 201, created.message
    assert not missing_paths(rayjob["spec"], created.body["spec"]), "RayJob fields pruned"
    name = created.body["metadata"]["name"]
    suspend = operator.request("PATCH", f"{rayjobs}/{name}", {"spec": {"suspend": True}}, MERGE)
    assert _status(suspend) == 200, suspend.message
    # No delete: the job's owner reference garbage-collects its RayJob.
    assert _status(operator.request("DELETE", f"{rayjobs}/{name}")) == 403

    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"rbac-job.{secrets.token_hex(4)}", "namespace": job_ns},
        "involvedObject": {"kind": "FineTuneJob", "name": "rbac-job", "namespace": job_ns},
        "reason": "RayJobCreated",
        "message": "Created RayJob rbac-job",
        "type": "Normal",
    }
    posted = operator.request("POST", collection_path("Event", job_ns), event)
    assert _status(posted) == 201, posted.message
    events = collection_path("Event", job_ns)
    bump = operator.request("PATCH", f"{events}/{event['metadata']['name']}", {"count": 2}, MERGE)
    assert _status(bump) == 403, "kopf only posts Events"
    replace = operator.request("PUT", f"{jobs}/rbac-job/status", patched.body)
    assert _status(replace) == 403, "the status is only merge-patched"


def _operator_is_refused(
    operator: KubeRest, docs: list[dict[str, Any]], own_ns: str, job_ns: str
) -> None:
    own_secret = find(docs, "Secret", "-s3")[0]["metadata"]["name"]
    refused = {
        "read a Secret in a job namespace": (
            "GET",
            f"/api/v1/namespaces/{job_ns}/secrets/{own_secret}",
        ),
        "list Secrets in a job namespace": ("GET", f"/api/v1/namespaces/{job_ns}/secrets"),
        "list Secrets cluster-wide": ("GET", "/api/v1/secrets"),
        "read its own namespace's Secret": (
            "GET",
            f"/api/v1/namespaces/{own_ns}/secrets/{own_secret}",
        ),
        "read ConfigMaps of a job namespace": ("GET", f"/api/v1/namespaces/{job_ns}/configmaps"),
        "list ConfigMaps of its own namespace": ("GET", f"/api/v1/namespaces/{own_ns}/configmaps"),
        "list Pods": ("GET", f"/api/v1/namespaces/{job_ns}/pods"),
        "delete a FineTuneJob": ("DELETE", f"{collection_path('FineTuneJob', job_ns)}/rbac-job"),
        "create a RayCluster": (
            "POST",
            collection_path("RayJob", job_ns).replace("rayjobs", "rayclusters"),
        ),
        "change its own RBAC": ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles"),
    }
    answers = {
        what: _status(operator.request(method, path, {} if method == "POST" else None))
        for what, (method, path) in refused.items()
    }
    assert all(status == 403 for status in answers.values()), answers


def test_cluster_wide_operator_can_do_its_job_and_no_more(
    kube: KubeCluster, kube_namespace: str, job_namespaces: list[str], chart: Path
) -> None:
    docs, created = _install(kube, chart, kube_namespace, {"operator": {"clusterWide": True}})
    try:
        sa = one(docs, "ServiceAccount", "")["metadata"]["name"]
        operator = as_service_account(kube, kube_namespace, sa)
        for job_ns in job_namespaces:
            _operator_does_its_job(kube, operator, docs, job_ns)
        _operator_is_refused(operator, docs, kube_namespace, job_namespaces[0])
        peering = one(docs, "ClusterKopfPeering")["metadata"]["name"]
        heartbeat = {"status": {"op-1": {"priority": 7, "lastseen": "2026-01-01T00:00:00Z"}}}
        path = f"{collection_path('ClusterKopfPeering')}/{peering}"
        assert _status(operator.request("PATCH", path, heartbeat, MERGE)) == 200
    finally:
        delete_all(kube, [d for d in created if d["kind"].startswith("Cluster")])


def test_namespaced_operator_is_confined_to_its_namespaces(
    kube: KubeCluster, kube_namespace: str, job_namespaces: list[str], chart: Path
) -> None:
    watched, unwatched = job_namespaces
    docs, created = _install(
        kube, chart, kube_namespace, {"operator": {"watchNamespaces": [watched]}}
    )
    assert not [d for d in created if d["kind"].startswith("Cluster")]
    sa = one(docs, "ServiceAccount", "")["metadata"]["name"]
    operator = as_service_account(kube, kube_namespace, sa)
    _operator_does_its_job(kube, operator, docs, watched)
    _operator_is_refused(operator, docs, kube_namespace, watched)

    create(kube.rest, {**valid_manifest("x"), "metadata": {"name": "x", "namespace": unwatched}})
    elsewhere = {
        "list jobs": ("GET", collection_path("FineTuneJob", unwatched)),
        "create a RayJob": ("POST", collection_path("RayJob", unwatched)),
        "post an Event": ("POST", collection_path("Event", unwatched)),
        "list jobs cluster-wide": ("GET", "/apis/tuneforge.io/v1alpha1/finetunejobs"),
    }
    answers = {
        what: _status(operator.request(m, p, {} if m == "POST" else None))
        for what, (m, p) in elsewhere.items()
    }
    assert all(status == 403 for status in answers.values()), answers

    peering = one(docs, "KopfPeering")["metadata"]
    path = f"{collection_path('KopfPeering', peering['namespace'])}/{peering['name']}"
    heartbeat = {"status": {"op-1": {"priority": 7}}}
    assert _status(operator.request("PATCH", path, heartbeat, MERGE)) == 200
    # The chart copied the credentials where the training pods run, without the operator.
    assert {(d["metadata"]["namespace"], d["kind"]) for d in created if d["kind"] == "Secret"} >= {
        (watched, "Secret")
    }
