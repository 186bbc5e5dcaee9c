"""Tenancy on the real apiserver: two teams (namespaces), one operator, one policy.

Each cross-team attempt (the other team's bucket or prefix, its base model, its model name
and alias, a runtime allowed only to it, a local path) is refused with a message naming the
rule: at `kubectl apply` by the admission webhook, and by the operator (InvalidSpec, no
RayJob) when no webhook runs. A same-team job is admitted and its RayJob runs with the team's
own Secrets, experiment and checkpoint location.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures._procs import free_port
from tests.fixtures.kube import KubeCluster
from tests.integration.operator.harness import (
    JOBS,
    TEST_RUNTIME,
    OperatorProcess,
    get_job,
    job_manifest,
    rayjobs,
    wait_for_condition,
    wait_until,
)
from tests.integration.operator.test_admission_webhook import CONFIGS, webhook_configuration
from tuneforge.api.runtime import runtimes_configmap

pytestmark = pytest.mark.integration
SELECTOR_LABEL = "tuneforge.io/tenancy-test"


class Teams:
    """Two namespaces and the policy that separates them."""

    def __init__(self, kube: KubeCluster) -> None:
        self.a, self.b = kube.create_namespace("team-a"), kube.create_namespace("team-b")
        self.policy = f"""
namespaces:
  {self.a}:
    storagePrefixes: [s3://{self.a}]
    baseModelPrefixes: [hf://stable-diffusion-v1-5]
    checkpointUri: s3://{self.a}/checkpoints
    s3SecretRef: {self.a}-s3
    mlflowSecretRef: {self.a}-mlflow
  {self.b}:
    storagePrefixes: [s3://{self.b}]
"""
        self.write_policy(kube, self.policy)

    def write_policy(self, kube: KubeCluster, policy: str) -> None:
        """(Re)write the runtimes ConfigMap in team A's namespace with this policy."""
        b_only = TEST_RUNTIME.model_copy(update={"allowed_namespaces": [self.b]})
        configmap = runtimes_configmap(
            {"default": TEST_RUNTIME, "b-gpu": b_only}, self.a, tenancy=policy
        )
        path = f"/api/v1/namespaces/{self.a}/configmaps"
        kube.request("DELETE", f"{path}/{configmap['metadata']['name']}")
        created = kube.request("POST", path, configmap)
        assert created.ok, created.message

    def job(self, name: str, **spec: Any) -> dict[str, Any]:
        """A job of team A that every rule admits, with `spec` changes on top."""
        manifest = job_manifest(name, model=f"{self.a}.dogs")
        manifest["spec"]["dataset"]["uri"] = f"s3://{self.a}/dogs"
        for path, value in spec.items():
            section, _, key = path.partition(".")
            if key:
                manifest["spec"].setdefault(section, {})[key] = value
            else:
                manifest["spec"][section] = value
        return manifest

    def cross_team_attempts(self) -> list[tuple[dict[str, Any], str]]:
        """(job of team A, text the refusal must contain) for each attempt on team B."""
        b = self.b
        return [
            (self.job("their-data", **{"dataset.uri": f"s3://{b}/cats"}), "storagePrefixes"),
            (self.job("lookalike", **{"dataset.uri": f"s3://{self.a}x/cats"}), "storagePrefixes"),
            (
                self.job("their-class", **{"dataset.classDataUri": f"s3://{b}/class"}),
                "spec.dataset.classDataUri",
            ),
            (self.job("their-base", **{"baseModel.uri": f"s3://{b}/base"}), "spec.baseModel.uri"),
            (
                self.job(
                    "their-alias",
                    **{"output.registeredModel": f"{b}.dogs"},
                    **{"output.alias": "production"},
                ),
                "(and its alias 'production') is outside namespace",
            ),
            (self.job("their-runtime", runtime="b-gpu"), "allowedNamespaces"),
            (self.job("local", **{"dataset.uri": "/data/dogs"}), "is a local path"),
        ]


@pytest.fixture
def teams(kube: KubeCluster) -> Iterator[Teams]:
    made = Teams(kube)
    yield made
    kube.delete_namespace(made.a)
    kube.delete_namespace(made.b)


def _operator(start: Callable[..., OperatorProcess], teams: Teams, **env: str) -> OperatorProcess:
    watched = {"TUNEFORGE_OPERATOR_NAMESPACES": f"{teams.a},{teams.b}"}
    return start(teams.a, extra_env={**watched, **env}, runtimes=False)


def test_webhook_refuses_each_cross_team_attempt_and_admits_the_team(
    kube: KubeCluster,
    teams: Teams,
    start_operator: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> None:
    name, port = f"tuneforge-tenancy-{teams.a}", free_port()
    for namespace in (teams.a, teams.b):
        label = {"metadata": {"labels": {SELECTOR_LABEL: "yes"}}}
        path = f"/api/v1/namespaces/{namespace}"
        assert kube.request("PATCH", path, label, "application/merge-patch+json").ok
    config = webhook_configuration(name, "yes", port)
    config["webhooks"][0]["namespaceSelector"] = {"matchLabels": {SELECTOR_LABEL: "yes"}}
    assert kube.request("POST", CONFIGS, config).ok
    try:
        operator = _operator(
            start_operator,
            teams,
            TUNEFORGE_OPERATOR_WEBHOOK_PORT=str(port),
            TUNEFORGE_OPERATOR_WEBHOOK_HOSTS="127.0.0.1",
            TUNEFORGE_OPERATOR_WEBHOOK_NAMESPACE=teams.a,
            TUNEFORGE_OPERATOR_WEBHOOK_CONFIGURATION=name,
            TUNEFORGE_OPERATOR_WEBHOOK_CERT_DIR=str(tmp_path / "certs"),
        )
        probe, _ = teams.cross_team_attempts()[0]

        def refusing() -> bool:
            answer = kube.request("POST", JOBS.format(ns=teams.a) + "?dryRun=All", probe)
            return answer.status == 422

        try:
            wait_until("the webhook to refuse", refusing, timeout_s=60)
        except AssertionError:
            print(operator.log())
            raise
        for manifest, rule in teams.cross_team_attempts():
            answer = kube.request("POST", JOBS.format(ns=teams.a), manifest)
            assert answer.status == 422, (manifest["metadata"]["name"], answer.message)
            assert rule in answer.message and teams.a in answer.message, answer.message
        same_team = kube.request("POST", JOBS.format(ns=teams.a), teams.job("ours"))
        assert same_team.status == 201, same_team.message
        (rayjob,) = wait_until("team A's RayJob", lambda: rayjobs(kube, teams.a))
        head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
        container = head["containers"][0]
        secrets = {source["secretRef"]["name"] for source in container.get("envFrom", [])}
        assert secrets == {f"{teams.a}-s3", f"{teams.a}-mlflow"}
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert env["TUNEFORGE_MLFLOW_EXPERIMENT"] == f"tuneforge-{teams.a}"
        assert env["TUNEFORGE_CHECKPOINT_URI"] == f"s3://{teams.a}/checkpoints"
        assert json.loads(env["TUNEFORGE_JOB_SCOPE"])["namespace"] == teams.a
        # Team B has no checkpointUri, so the runtime's default (shared) bucket stays: the
        # trainer refuses it, and B's own bucket and default model prefix pass admission.
        b_job = job_manifest("theirs", model=f"{teams.b}.cats")
        b_job["spec"]["dataset"]["uri"] = f"s3://{teams.b}/cats"
        b_job["spec"]["baseModel"] = {"uri": f"s3://{teams.b}/base"}
        answer = kube.request("POST", JOBS.format(ns=teams.b), b_job)
        assert answer.status == 201, answer.message
    finally:
        kube.request("DELETE", f"{CONFIGS}/{name}")


def test_operator_without_webhook_refuses_cross_team_jobs_as_invalid_spec(
    kube: KubeCluster, teams: Teams, start_operator: Callable[..., OperatorProcess]
) -> None:
    _operator(start_operator, teams)
    attempts = teams.cross_team_attempts()
    for manifest, _ in attempts:
        assert kube.request("POST", JOBS.format(ns=teams.a), manifest).ok
    for manifest, rule in attempts:
        job = wait_for_condition(
            kube, teams.a, manifest["metadata"]["name"], "Succeeded", status="False"
        )
        (succeeded,) = [c for c in job["status"]["conditions"] if c["type"] == "Succeeded"]
        assert succeeded["reason"] == "InvalidSpec", succeeded
        assert succeeded["message"].startswith("Refused by tenancy: "), succeeded
        assert rule in succeeded["message"], succeeded
        assert "rayJobName" not in job["status"]
    assert rayjobs(kube, teams.a) == []
    # A runtime that does not exist: the message lists only what team A may use.
    assert kube.request("POST", JOBS.format(ns=teams.a), teams.job("typo", runtime="gpu")).ok

    def blocked() -> str:
        found = get_job(kube, teams.a, "typo") or {}
        messages = [c.get("message", "") for c in (found.get("status") or {}).get("conditions", [])]
        return next((m for m in messages if "is not defined" in m), "")

    message = wait_until("the RuntimeNotFound message", blocked, timeout_s=30)
    assert f"runtimes namespace {teams.a} may use: default)" in message, message
    assert "b-gpu" not in message
    # A policy the operator cannot read (two teams share a bucket) refuses every job, naming it.
    teams.write_policy(kube, teams.policy.replace(f"s3://{teams.b}]", f"s3://{teams.a}/b]"))
    assert kube.request("POST", JOBS.format(ns=teams.a), teams.job("after-bad-policy")).ok
    job = wait_for_condition(kube, teams.a, "after-bad-policy", "Succeeded", status="False")
    (succeeded,) = [c for c in job["status"]["conditions"] if c["type"] == "Succeeded"]
    assert "the tenancy policy (tenancy.yaml) is invalid" in succeeded["message"], succeeded
    assert "overlap" in succeeded["message"], succeeded
