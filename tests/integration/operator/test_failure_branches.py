"""The operator's failure branches on the real apiserver: each one reported, none left stuck.

A RayJob of the same name owned by someone else, a create the API refuses (a quota), a job in
a Kueue queue whose suspension the operator must leave to Kueue, an invalid runtime and the
runtime cache, and KubeRay's deadline and retries (`activeDeadlineSeconds`, `backoffLimit`)
end to end through the stand-in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import yaml

from tests.fixtures._kube_cluster import KubeCluster
from tests.fixtures.kuberay_standin import KubeRayStandIn
from tests.integration.operator.harness import (
    RAYJOBS,
    TEST_RUNTIME,
    OperatorProcess,
    condition,
    create_job,
    events,
    get_job,
    get_rayjob,
    install_runtimes,
    job_manifest,
    wait_for_condition,
    wait_until,
)
from tuneforge.api import FineTuneJob
from tuneforge.api.runtime import runtimes_configmap
from tuneforge_operator.builder import KUEUE_QUEUE_LABEL, build_rayjob

pytestmark = pytest.mark.integration
StartOperator = Callable[..., OperatorProcess]
StartStandIn = Callable[..., KubeRayStandIn]


def _reasons(kube: KubeCluster, namespace: str, name: str) -> list[str]:
    return [e["reason"] for e in events(kube, namespace, name)]


def test_a_rayjob_owned_by_someone_else_is_reported_and_left_alone(
    kube: KubeCluster, kube_namespace: str, start_operator: StartOperator
) -> None:
    """Another controller's RayJob holds the name: not adopted, not changed, the job waits."""
    metadata = {"name": "taken", "namespace": kube_namespace, "uid": "not-this-job"}
    stranger = FineTuneJob.model_validate({"metadata": metadata, "spec": job_manifest("x")["spec"]})
    foreign = build_rayjob(stranger, TEST_RUNTIME)
    foreign["metadata"].pop("ownerReferences", None)
    foreign["metadata"]["labels"] = {"team": "someone-else"}
    created = kube.request("POST", RAYJOBS.format(ns=kube_namespace), foreign)
    assert created.ok, created.message
    before = created.body

    start_operator(kube_namespace)
    create_job(kube, kube_namespace, job_manifest("taken"))
    job = wait_for_condition(kube, kube_namespace, "taken", "RayJobCreated", status="False")
    reported = condition(job, "RayJobCreated") or {}
    assert reported["reason"] == "RayJobCreateFailed"
    assert "is not owned by this FineTuneJob" in reported["message"]
    assert "delete it or give the job another name" in reported["message"]
    assert condition(job, "Succeeded")["status"] == "Unknown"
    assert "RayJobCreateFailed" in _reasons(kube, kube_namespace, "taken")
    time.sleep(3)  # retries at the 2-second resync: still not adopted
    after = get_rayjob(kube, kube_namespace, "taken") or {}
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert not after["metadata"].get("ownerReferences")

    deleted = kube.request("DELETE", f"{RAYJOBS.format(ns=kube_namespace)}/taken")
    assert deleted.ok, deleted.message
    wait_for_condition(kube, kube_namespace, "taken", "RayJobCreated", timeout_s=60)
    mine = get_rayjob(kube, kube_namespace, "taken") or {}
    owner = mine["metadata"]["ownerReferences"][0]
    assert owner["uid"] == get_job(kube, kube_namespace, "taken")["metadata"]["uid"]


def _quota(kube: KubeCluster, namespace: str, rayjobs: int) -> None:
    path = f"/api/v1/namespaces/{namespace}/resourcequotas"
    body = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "rayjobs"},
        "spec": {"hard": {"count/rayjobs.ray.io": str(rayjobs)}},
    }
    existing = kube.request("GET", f"{path}/rayjobs")
    if existing.ok:
        body["metadata"]["resourceVersion"] = existing.body["metadata"]["resourceVersion"]
        response = kube.request("PUT", f"{path}/rayjobs", body)
    else:
        response = kube.request("POST", path, body)
    assert response.ok, response.message


def test_a_create_the_api_refuses_is_reported_then_retried(
    kube: KubeCluster, kube_namespace: str, start_operator: StartOperator
) -> None:
    """A ResourceQuota of zero RayJobs: the API server's own words reach the condition."""
    _quota(kube, kube_namespace, 0)
    start_operator(kube_namespace)
    create_job(kube, kube_namespace, job_manifest("over-quota"))
    job = wait_for_condition(kube, kube_namespace, "over-quota", "RayJobCreated", status="False")
    reported = condition(job, "RayJobCreated") or {}
    assert reported["reason"] == "RayJobCreateFailed", reported
    assert reported["message"].startswith("The API server refused RayJob over-quota: ")
    assert "quota" in reported["message"], reported["message"]
    assert get_rayjob(kube, kube_namespace, "over-quota") is None
    assert condition(job, "Succeeded")["status"] == "Unknown"

    _quota(kube, kube_namespace, 1)
    wait_for_condition(kube, kube_namespace, "over-quota", "RayJobCreated", timeout_s=60)
    assert get_rayjob(kube, kube_namespace, "over-quota") is not None


def test_a_job_in_a_kueue_queue_is_suspended_and_resumed_by_kueue_only(
    kube: KubeCluster,
    kube_namespace: str,
    start_operator: StartOperator,
    kuberay_standin: StartStandIn,
) -> None:
    start_operator(kube_namespace)
    kuberay_standin(kube_namespace, outcome="hold")
    create_job(kube, kube_namespace, job_manifest("queued", queueName="team-a"))
    wait_for_condition(kube, kube_namespace, "queued", "RayJobCreated")
    rayjob = get_rayjob(kube, kube_namespace, "queued") or {}
    assert rayjob["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "team-a"
    assert rayjob["spec"]["suspend"] is True
    time.sleep(3)  # resyncs pass: the operator does not resume what Kueue holds
    assert (get_rayjob(kube, kube_namespace, "queued") or {})["spec"]["suspend"] is True
    held = wait_for_condition(kube, kube_namespace, "queued", "Suspended")
    assert condition(held, "Succeeded")["status"] == "Unknown"

    admitted = kube.rest.request(  # Kueue admits the workload
        "PATCH",
        f"{RAYJOBS.format(ns=kube_namespace)}/queued",
        {"spec": {"suspend": False}},
        content_type="application/merge-patch+json",
    )
    assert admitted.ok, admitted.message
    wait_for_condition(kube, kube_namespace, "queued", "Training", timeout_s=30)
    time.sleep(3)  # nor does it suspend again what Kueue admitted
    assert (get_rayjob(kube, kube_namespace, "queued") or {})["spec"]["suspend"] is False


def test_an_invalid_runtime_is_reported_and_the_runtime_cache_is_honoured(
    kube: KubeCluster, kube_namespace: str, start_operator: StartOperator
) -> None:
    """A runtime the platform team mistyped blocks its jobs by name; a fix is seen once the
    cached read (RUNTIME_CACHE_SECONDS) expires, not before."""
    cache_s = 8
    configmap = runtimes_configmap({"default": TEST_RUNTIME}, kube_namespace)
    configmap["data"]["broken"] = yaml.safe_dump({"image": "x:1", "cpusPerWorkr": 2})
    response = kube.request("POST", f"/api/v1/namespaces/{kube_namespace}/configmaps", configmap)
    assert response.ok, response.message
    start_operator(
        kube_namespace, {"TUNEFORGE_OPERATOR_RUNTIME_CACHE_SECONDS": str(cache_s)}, runtimes=False
    )
    submitted = time.time()
    create_job(kube, kube_namespace, job_manifest("mistyped", runtime="broken"))
    job = wait_for_condition(kube, kube_namespace, "mistyped", "RayJobCreated", status="False")
    reported = condition(job, "RayJobCreated") or {}
    assert reported["reason"] == "RuntimeInvalid", reported
    assert "broken" in reported["message"] and "cpusPerWorkr" in reported["message"]
    assert "RuntimeInvalid" in _reasons(kube, kube_namespace, "mistyped")

    install_runtimes(kube, kube_namespace, {"default": TEST_RUNTIME, "broken": TEST_RUNTIME})
    fixed = time.time()
    assert fixed - submitted < cache_s - 3, "too slow to tell the cache from no cache"
    wait_until("the RayJob", lambda: get_rayjob(kube, kube_namespace, "mistyped"), 60)
    created = (get_rayjob(kube, kube_namespace, "mistyped") or {})["metadata"]
    created_at = datetime.strptime(created["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    # The cached read was made after the job was submitted; the fix was seen only after it
    # expired (timestamps have whole seconds).
    assert created_at.replace(tzinfo=UTC).timestamp() >= submitted + cache_s - 1


def test_deadline_and_retries_end_to_end(
    kube: KubeCluster,
    kube_namespace: str,
    start_operator: StartOperator,
    kuberay_standin: StartStandIn,
) -> None:
    start_operator(kube_namespace)
    standin = kuberay_standin(kube_namespace, outcome="hold")
    standin.outcomes.update({"flaky": "fail-once", "broken": "fail"})
    create_job(kube, kube_namespace, job_manifest("slow", activeDeadlineSeconds=3))
    create_job(kube, kube_namespace, job_manifest("flaky", backoffLimit=1))
    create_job(kube, kube_namespace, job_manifest("broken", backoffLimit=1))

    late = wait_for_condition(
        kube, kube_namespace, "slow", "Succeeded", status="False", timeout_s=60
    )
    assert condition(late, "Succeeded")["reason"] == "DeadlineExceeded"
    assert "activeDeadlineSeconds" in condition(late, "Succeeded")["message"]
    assert "DeadlineExceeded" in _reasons(kube, kube_namespace, "slow")

    retried = wait_for_condition(kube, kube_namespace, "flaky", "Succeeded", timeout_s=60)
    assert (get_rayjob(kube, kube_namespace, "flaky") or {})["status"]["failed"] == 1
    assert "AppFailed" not in _reasons(kube, kube_namespace, "flaky")  # never reported failed
    assert retried["status"]["completionTime"]

    failed = wait_for_condition(kube, kube_namespace, "broken", "Succeeded", "False", 60)
    assert condition(failed, "Succeeded")["reason"] == "AppFailed"
    assert (get_rayjob(kube, kube_namespace, "broken") or {})["status"]["failed"] == 1
    seen = [t for t in standin.transitions if t[0] == "broken"]
    assert [t[1] for t in seen].count("Retrying") == 1 and seen[-1][1] == "Failed"
