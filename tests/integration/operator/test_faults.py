"""The operator under faults: peering as documented, kills after a terminal write, outages."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures._kube_cluster import KubeCluster, write_kubeconfig
from tests.fixtures.kuberay_standin import KubeRayStandIn
from tests.integration.helm.apply import install_chart_crds
from tests.integration.operator.harness import (
    JOBS,
    OperatorProcess,
    create_job,
    events,
    get_rayjob,
    install_runtimes,
    job_manifest,
    wait_for_condition,
    wait_until,
)
from tests.integration.operator.outage import CuttableProxy

pytestmark = pytest.mark.integration
StartOperator = Callable[..., OperatorProcess]
StartStandIn = Callable[..., KubeRayStandIn]


def _reasons(kube: KubeCluster, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in events(kube, namespace, name) if e.get("reason") == reason]


def test_namespaced_operator_with_the_default_peering_name_handles_jobs(
    kube: KubeCluster,
    kube_namespace: str,
    start_operator: StartOperator,
    kuberay_standin: StartStandIn,
) -> None:
    """As docs/operator.md says: peering CRDs applied, `PEERING_NAME` left at `tuneforge`."""
    install_chart_crds(kube)
    operator = start_operator(kube_namespace, {"TUNEFORGE_OPERATOR_PEERING_NAME": "tuneforge"})
    kuberay_standin(kube_namespace, outcome="succeed")
    create_job(kube, kube_namespace, job_manifest("peered"))

    wait_for_condition(kube, kube_namespace, "peered", "Succeeded", timeout_s=60)
    peering = kube.request(
        "GET", f"/apis/kopf.dev/v1/namespaces/{kube_namespace}/kopfpeerings/tuneforge"
    )
    assert peering.ok, peering.message
    wait_until("/healthz", lambda: _health(operator)["peering"] == "ok: tuneforge", 30)


def _health(operator: OperatorProcess) -> dict[str, Any]:
    with urllib.request.urlopen(operator.liveness_url, timeout=10) as response:
        return dict(json.load(response))


def _role_without_peering_create(kube: KubeCluster, namespace: str) -> None:
    """What the operator needs in its namespace, less `create` on kopfpeerings."""
    rules = [
        (["tuneforge.io"], ["finetunejobs"], ["get", "list", "watch", "patch"]),
        (["tuneforge.io"], ["finetunejobs/status"], ["patch"]),
        (["ray.io"], ["rayjobs"], ["get", "list", "watch", "create", "patch"]),
        ([""], ["configmaps"], ["get"]),
        ([""], ["events"], ["create"]),
        (["kopf.dev"], ["kopfpeerings"], ["get", "list", "watch", "patch"]),
    ]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "operator"},
        "rules": [{"apiGroups": g, "resources": r, "verbs": v} for g, r, v in rules],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "operator"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "operator"},
        "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": namespace}],
    }
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    for path, body in ((f"{rbac}/roles", role), (f"{rbac}/rolebindings", binding)):
        response = kube.request("POST", path, body)
        assert response.ok, response.message


def test_operator_that_may_not_create_its_peering_object_says_what_it_waits_for(
    kube: KubeCluster, kube_namespace: str, start_operator: StartOperator, tmp_path: Path
) -> None:
    install_chart_crds(kube)
    _role_without_peering_create(kube, kube_namespace)
    kubeconfig = kube.service_account_kubeconfig(
        kube_namespace, "operator", tmp_path / "sa.kubeconfig"
    )
    operator = start_operator(
        kube_namespace,
        {"KUBECONFIG": str(kubeconfig), "TUNEFORGE_OPERATOR_PEERING_NAME": "tuneforge"},
    )
    missing = f"Paused: KopfPeering {kube_namespace}/tuneforge is missing"
    wait_until("the log line", lambda: missing in operator.log(), timeout_s=30)
    assert "403" in operator.log() and "PEERING_NAME" in operator.log()
    wait_until("/healthz to say it", lambda: _health(operator)["peering"].startswith(missing), 30)

    peering = {
        "apiVersion": "kopf.dev/v1",
        "kind": "KopfPeering",
        "metadata": {"name": "tuneforge"},
    }
    created = kube.request(
        "POST", f"/apis/kopf.dev/v1/namespaces/{kube_namespace}/kopfpeerings", peering
    )
    assert created.ok, created.message
    wait_until(
        "/healthz to see the peering object",
        lambda: _health(operator)["peering"] == "ok: tuneforge",
        timeout_s=30,
    )
    create_job(kube, kube_namespace, job_manifest("after-peering"))
    wait_until("its RayJob", lambda: get_rayjob(kube, kube_namespace, "after-peering"), 30)


def test_final_event_lost_to_a_kill_is_posted_once_on_the_next_start(
    kube: KubeCluster, kube_namespace: str, start_operator: StartOperator
) -> None:
    """The status says the job succeeded, no Event says so (killed between the two writes)."""
    install_runtimes(kube, kube_namespace)
    create_job(kube, kube_namespace, job_manifest("ended"))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    terminal = {
        "observedGeneration": 1,
        "rayJobName": "ended",
        "completionTime": now,
        "conditions": [
            {
                "type": "Succeeded",
                "status": "True",
                "reason": "TrainingSucceeded",
                "message": "Training finished (registration not verified: no MLflow URI)",
                "lastTransitionTime": now,
                "observedGeneration": 1,
            }
        ],
    }
    response = kube.rest.request(
        "PATCH",
        f"{JOBS.format(ns=kube_namespace)}/ended/status",
        {"status": terminal},
        content_type="application/merge-patch+json",
    )
    assert response.ok, response.message

    operator = start_operator(kube_namespace, runtimes=False)
    posted = wait_until(
        "the final Event",
        lambda: _reasons(kube, kube_namespace, "ended", "TrainingSucceeded"),
        timeout_s=30,
    )
    assert posted[0]["message"] == terminal["conditions"][0]["message"]
    assert posted[0]["type"] == "Normal"
    operator.kill()
    operator.start()
    time.sleep(6)  # three resync intervals of the restarted operator
    assert len(_reasons(kube, kube_namespace, "ended", "TrainingSucceeded")) == 1


def test_a_success_registered_after_training_posts_one_training_succeeded_event(
    kube: KubeCluster,
    kube_namespace: str,
    start_operator: StartOperator,
    kuberay_standin: StartStandIn,
    mlflow_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow import MlflowClient

    for key, value in mlflow_server.env().items():
        monkeypatch.setenv(key, value)
    start_operator(
        kube_namespace, {"TUNEFORGE_OPERATOR_MLFLOW_TRACKING_URI": mlflow_server.tracking_uri}
    )
    standin = kuberay_standin(kube_namespace, outcome="hold")
    uid = create_job(kube, kube_namespace, job_manifest("once", model="sks-once"))["metadata"][
        "uid"
    ]
    wait_for_condition(kube, kube_namespace, "once", "Training")
    client = MlflowClient(mlflow_server.tracking_uri)
    experiment = client.create_experiment(f"operator-once-{kube_namespace}")
    run = client.create_run(experiment, tags={"tuneforge.job_uid": uid})

    # Training ends first; the version is registered a moment later (two status writes).
    standin.finish("once", "succeed")
    wait_for_condition(kube, kube_namespace, "once", "Training", status="False")
    client.create_registered_model("sks-once")
    client.create_model_version(
        "sks-once",
        f"{run.info.artifact_uri}/adapter",
        run_id=run.info.run_id,
        tags={"tuneforge.job_uid": uid},
    )
    wait_for_condition(kube, kube_namespace, "once", "Succeeded", timeout_s=60)
    wait_until(
        "the AdapterRegistered Event",
        lambda: _reasons(kube, kube_namespace, "once", "AdapterRegistered"),
        timeout_s=30,
    )
    time.sleep(3)  # let any queued Event arrive
    succeeded = _reasons(kube, kube_namespace, "once", "TrainingSucceeded")
    assert len(succeeded) == 1, [e["message"] for e in succeeded]
    assert "registered model sks-once" in succeeded[0]["message"]


def test_resync_retries_within_its_interval_after_an_apiserver_outage(
    kube: KubeCluster,
    kube_namespace: str,
    start_operator: StartOperator,
    kuberay_standin: StartStandIn,
    tmp_path: Path,
) -> None:
    """kopf's backoff for unexpected errors is 60 s; the resync must not wait that long."""
    proxy = CuttableProxy(kube.host).start()
    kubeconfig = write_kubeconfig(
        tmp_path / "via-proxy.kubeconfig", proxy.url, kube.ca_file, kube.token, "admin"
    )
    operator = start_operator(
        kube_namespace,
        {"KUBECONFIG": str(kubeconfig), "TUNEFORGE_OPERATOR_RESYNC_SECONDS": "3"},
    )
    kuberay_standin(kube_namespace, outcome="hold")
    create_job(kube, kube_namespace, job_manifest("outage"))
    wait_for_condition(kube, kube_namespace, "outage", "Training")
    log = sorted(operator.log_dir.glob(f"operator-{kube_namespace}-*.log"))[-1]

    proxy.cut()
    wait_until(
        "a failed resync during the outage",
        lambda: "resync' failed" in log.read_text(errors="replace"),
        timeout_s=30,
    )
    time.sleep(8)  # several failed attempts: a long backoff would have set in by now
    seen = len(log.read_text(errors="replace"))
    proxy.start()
    restored = time.monotonic()
    wait_until(
        "a successful resync after the outage",
        lambda: "resync' succeeded" in log.read_text(errors="replace")[seen:],
        timeout_s=20,
    )
    assert time.monotonic() - restored < 3 + 4, operator.log()
    proxy.cut()
