"""The operator's validating admission webhook, called by the real API server over TLS.

The operator creates its own CA and certificate (in a Secret), patches the `caBundle` of a
ValidatingWebhookConfiguration made as the chart makes it (a URL on 127.0.0.1 instead of the
Service, a namespace selector that only matches this test's namespace), and refuses with one
readable message what the CRD schema lets through.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures._procs import free_port
from tests.fixtures.kube import KubeCluster
from tests.integration.operator.harness import (
    JOBS,
    OperatorProcess,
    get_job,
    job_manifest,
    wait_until,
)
from tests.unit.api.invalid_jobs import ADMISSION_CASES, InvalidCase, valid_manifest
from tuneforge_operator.admission import LAST_APPLIED

pytestmark = pytest.mark.integration

CONFIGS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
SELECTOR_LABEL = "tuneforge.io/admission-test"
TYPO_CASES = [c for c in ADMISSION_CASES if "unknown field" in (c.message or "")]
SERVER_SIDE_CASES = [c for c in ADMISSION_CASES if c not in TYPO_CASES]


def webhook_configuration(name: str, namespace: str, port: int) -> dict[str, Any]:
    """What helm/tuneforge/templates/webhook-configuration.yaml renders, pointed at 127.0.0.1."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "finetunejobs.tuneforge.io",
                "admissionReviewVersions": ["v1", "v1beta1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
                "clientConfig": {"url": f"https://127.0.0.1:{port}/validate-finetunejob"},
                "namespaceSelector": {"matchLabels": {SELECTOR_LABEL: namespace}},
                "rules": [
                    {
                        "apiGroups": ["tuneforge.io"],
                        "apiVersions": ["v1alpha1"],
                        "resources": ["finetunejobs"],
                        "operations": ["CREATE", "UPDATE"],
                        "scope": "Namespaced",
                    }
                ],
            }
        ],
    }


@pytest.fixture
def admitted_namespace(
    kube: KubeCluster,
    kube_namespace: str,
    start_operator: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> Iterator[tuple[str, str]]:
    """(namespace, webhook configuration): the namespace's FineTuneJobs go through the
    operator's webhook, which is ready to refuse."""
    name = f"tuneforge-webhook-{kube_namespace}"[:63].rstrip("-")
    port = free_port()
    label = {"metadata": {"labels": {SELECTOR_LABEL: kube_namespace}}}
    assert kube.request(
        "PATCH", f"/api/v1/namespaces/{kube_namespace}", label, "application/merge-patch+json"
    ).ok
    created = kube.request("POST", CONFIGS, webhook_configuration(name, kube_namespace, port))
    assert created.ok, created.message
    operator = start_operator(
        kube_namespace,
        extra_env={
            "TUNEFORGE_OPERATOR_WEBHOOK_PORT": str(port),
            "TUNEFORGE_OPERATOR_WEBHOOK_HOSTS": "127.0.0.1",
            "TUNEFORGE_OPERATOR_WEBHOOK_NAMESPACE": kube_namespace,
            "TUNEFORGE_OPERATOR_WEBHOOK_CONFIGURATION": name,
            "TUNEFORGE_OPERATOR_WEBHOOK_CERT_DIR": str(tmp_path / "webhook-certs"),
        },
    )
    probe = InvalidCase("probe", "metadata.name", {"metadata.name": "x" * 64}).manifest()

    def refusing() -> bool:
        answer = kube.request("POST", JOBS.format(ns=kube_namespace) + "?dryRun=All", probe)
        return answer.status == 422 and "denied the request" in answer.message

    try:
        try:
            wait_until("the webhook to refuse a 64-character name", refusing, timeout_s=60)
        except AssertionError:
            print(operator.log())
            raise
        yield kube_namespace, name
    finally:
        kube.request("DELETE", f"{CONFIGS}/{name}")


def test_operator_creates_the_certificate_and_patches_the_ca_bundle(
    kube: KubeCluster, admitted_namespace: tuple[str, str]
) -> None:
    namespace, name = admitted_namespace
    secret = kube.request("GET", f"/api/v1/namespaces/{namespace}/secrets/tuneforge-webhook-tls")
    assert secret.ok, secret.message
    assert secret.body["type"] == "kubernetes.io/tls"
    ca = base64.b64decode(secret.body["data"]["ca.crt"])
    config = kube.request("GET", f"{CONFIGS}/{name}").body
    bundle = base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"])
    assert bundle == ca and b"BEGIN CERTIFICATE" in ca


def test_a_valid_job_is_admitted(kube: KubeCluster, admitted_namespace: tuple[str, str]) -> None:
    namespace, _ = admitted_namespace
    answer = kube.request("POST", JOBS.format(ns=namespace), valid_manifest("fine"))
    assert answer.status == 201, answer.message


@pytest.mark.parametrize("case", SERVER_SIDE_CASES, ids=lambda c: c.id)
def test_webhook_refuses_what_the_schema_lets_through(
    kube: KubeCluster, admitted_namespace: tuple[str, str], case: InvalidCase
) -> None:
    namespace, _ = admitted_namespace
    manifest = case.manifest()
    answer = kube.request("POST", JOBS.format(ns=namespace), manifest)
    assert answer.status == 422, answer.message
    assert case.message is not None and case.message in answer.message, answer.message
    assert get_job(kube, namespace, manifest["metadata"]["name"]) is None


@pytest.mark.parametrize("case", TYPO_CASES, ids=lambda c: c.id)
def test_webhook_refuses_misspelt_fields_as_kubectl_apply_sends_them(
    kube: KubeCluster, admitted_namespace: tuple[str, str], case: InvalidCase
) -> None:
    """The 1.20 server prunes the typo before admission; the applied configuration keeps it."""
    namespace, _ = admitted_namespace
    manifest = case.manifest()
    manifest["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(case.manifest())}
    answer = kube.request("POST", JOBS.format(ns=namespace), manifest)
    assert answer.status == 422, answer.message
    assert case.message is not None and case.message in answer.message, answer.message


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl on PATH")
def test_kubectl_apply_of_a_misspelt_field_is_refused_with_or_without_client_validation(
    kube: KubeCluster, admitted_namespace: tuple[str, str], tmp_path: Path
) -> None:
    namespace, _ = admitted_namespace
    manifest = valid_manifest("typo")
    manifest["spec"]["lora"]["alhpa"] = 32
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(manifest))
    env = {**kube.env(), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # kubectl's cache
    for validate in ("--validate=true", "--validate=false"):
        run = subprocess.run(
            ["kubectl", "apply", validate, "-n", namespace, "-f", str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert run.returncode != 0, (validate, run.stdout)
        assert "alhpa" in run.stderr, (validate, run.stderr)
    assert get_job(kube, namespace, "typo") is None


def test_spec_is_immutable_once_the_rayjob_exists_except_suspend(
    kube: KubeCluster, admitted_namespace: tuple[str, str]
) -> None:
    namespace, _ = admitted_namespace
    path = f"{JOBS.format(ns=namespace)}/frozen"
    created = kube.request("POST", JOBS.format(ns=namespace), job_manifest("frozen"))
    assert created.ok, created.message
    wait_until(
        "status.rayJobName",
        lambda: ((get_job(kube, namespace, "frozen") or {}).get("status") or {}).get("rayJobName"),
    )
    merge = "application/merge-patch+json"
    changed = kube.request("PATCH", path, {"spec": {"method": "dreambooth"}}, merge)
    assert changed.status == 422, changed.message
    assert "spec.method: cannot change once the RayJob exists" in changed.message
    moved = kube.request("PATCH", path, {"spec": {"dataset": {"uri": "s3://datasets/cats"}}}, merge)
    assert moved.status == 422 and "spec.dataset" in moved.message, moved.message
    suspended = kube.request("PATCH", path, {"spec": {"suspend": True}}, merge)
    assert suspended.ok, suspended.message
    labelled = kube.request("PATCH", path, {"metadata": {"labels": {"team": "a"}}}, merge)
    assert labelled.ok, labelled.message
