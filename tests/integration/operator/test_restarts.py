"""The operator killed (SIGKILL) at any point and restarted: no duplicate RayJob, every job ends."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.fixtures._kube_cluster import KubeCluster
from tests.fixtures.kuberay_standin import KubeRayStandIn
from tests.integration.operator.harness import (
    JOBS,
    RAYJOBS,
    TEST_RUNTIME,
    OperatorProcess,
    all_succeeded,
    create_job,
    get_job,
    install_runtimes,
    job_manifest,
    rayjobs,
    wait_until,
)
from tuneforge.api import FineTuneJob
from tuneforge_operator.builder import build_rayjob

pytestmark = pytest.mark.integration
JOB_COUNT = 20


def _assert_one_rayjob_per_job(kube: KubeCluster, namespace: str, uids: dict[str, str]) -> None:
    items = rayjobs(kube, namespace)
    owners = Counter(
        ref["uid"]
        for item in items
        for ref in item["metadata"]["ownerReferences"]
        if ref.get("controller")
    )
    assert len(items) == len(uids)
    assert owners == Counter(uids.values())


def test_sigkill_at_random_points_over_twenty_jobs(
    kube: KubeCluster,
    kube_namespace: str,
    start_operator: Callable[..., OperatorProcess],
    kuberay_standin: Callable[..., KubeRayStandIn],
) -> None:
    operator = start_operator(kube_namespace)
    kuberay_standin(kube_namespace, outcome="succeed")
    rng = random.Random(20)
    names = [f"job-{i:02d}" for i in range(JOB_COUNT)]
    uids: dict[str, str] = {}
    for index, name in enumerate(names):
        uids[name] = create_job(kube, kube_namespace, job_manifest(name))["metadata"]["uid"]
        if index % 3 == 2:  # kill while creations, status writes and RayJob events are in flight
            time.sleep(rng.uniform(0.0, 0.6))
            operator.kill()
            operator.start(wait=index % 2 == 0)
    for _ in range(4):
        time.sleep(rng.uniform(0.2, 1.5))
        operator.kill()
        operator.start(wait=False)
    assert operator.starts >= 10

    wait_until("every job to succeed", lambda: all_succeeded(kube, kube_namespace, names), 240)
    _assert_one_rayjob_per_job(kube, kube_namespace, uids)
    for name in names:
        assert get_job(kube, kube_namespace, name)["status"]["rayJobName"] == name


def test_restart_after_naming_the_child_or_after_creating_it(
    kube: KubeCluster,
    kube_namespace: str,
    start_operator: Callable[..., OperatorProcess],
    kuberay_standin: Callable[..., KubeRayStandIn],
) -> None:
    """The two dangerous gaps, set up exactly: name written but no child; child but no status."""
    install_runtimes(kube, kube_namespace)
    named = create_job(kube, kube_namespace, job_manifest("named-only"))
    response = kube.rest.request(
        "PATCH",
        f"{JOBS.format(ns=kube_namespace)}/named-only/status",
        {"status": {"rayJobName": "named-only", "observedGeneration": 1}},
        content_type="application/merge-patch+json",
    )
    assert response.ok, response.message
    orphan = create_job(kube, kube_namespace, job_manifest("child-only"))
    meta = orphan["metadata"]
    job = FineTuneJob.model_validate(
        {
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "generation")},
            "spec": orphan["spec"],
        }
    )
    assert kube.request(
        "POST", RAYJOBS.format(ns=kube_namespace), build_rayjob(job, TEST_RUNTIME)
    ).ok

    start_operator(kube_namespace, runtimes=False)
    kuberay_standin(kube_namespace, outcome="succeed")
    names = ["named-only", "child-only"]
    wait_until("both jobs to succeed", lambda: all_succeeded(kube, kube_namespace, names), 120)
    _assert_one_rayjob_per_job(
        kube, kube_namespace, {"named-only": named["metadata"]["uid"], "child-only": meta["uid"]}
    )
