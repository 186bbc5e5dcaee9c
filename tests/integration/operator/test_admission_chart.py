"""The chart's webhook objects on the real API server, with the operator running as the chart's
ServiceAccount: its RBAC is enough to create the certificate Secret and patch the `caBundle`,
and no more (another webhook configuration, another Secret are refused).

The chart is rendered with `helm template` and applied as the admin, as `helm install` would;
only the webhook's `clientConfig` is pointed at 127.0.0.1 (the test API server reaches no
Service), and its namespace selector (a chart value) matches only this test's namespace.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures._procs import free_port
from tests.fixtures.kube import KubeCluster
from tests.integration.helm.apply import (
    apply_all,
    as_service_account,
    delete_all,
    install_chart_crds,
)
from tests.integration.operator.harness import JOBS, OperatorProcess, wait_until
from tests.unit.api.invalid_jobs import valid_manifest
from tests.unit.helm.conftest import chart, helm_bin
from tests.unit.helm.helmchart import is_hook, one, render
from tests.unit.helm.variants import ENDPOINTS

__all__ = ["chart", "helm_bin"]  # fixtures
pytestmark = pytest.mark.integration

CONFIGS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
SELECTOR_LABEL = "tuneforge.io/admission-chart-test"
MERGE = "application/merge-patch+json"


@pytest.fixture
def installed(
    kube: KubeCluster,
    kube_namespace: str,
    chart: Path,
    start_operator: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> Iterator[dict[str, Any]]:
    """The chart installed in `kube_namespace` with the webhook on; the operator running as
    the chart's ServiceAccount, serving the webhook on 127.0.0.1."""
    ns = kube_namespace
    release = f"a{secrets.token_hex(3)}"
    values = {
        **ENDPOINTS,
        "operator": {"watchNamespaces": [ns], "peering": {"name": release}},
        "webhook": {
            "enabled": True,
            "failurePolicy": "Fail",
            "namespaceSelector": {"matchLabels": {SELECTOR_LABEL: ns}},
        },
    }
    docs = [d for d in render(chart, values, release=release, namespace=ns) if not is_hook(d)]
    config = one(docs, "ValidatingWebhookConfiguration")
    (subject,) = one(docs, "RoleBinding", "-webhook-certificates")["subjects"]
    service_account = subject["name"]
    secret_name = next(
        rule["resourceNames"][0]
        for rule in one(docs, "Role", "-webhook-certificates")["rules"]
        if rule.get("resourceNames")
    )
    install_chart_crds(kube)  # kopf's peering CRDs, from the chart's crds/
    created = apply_all(
        kube, [d for d in docs if d["kind"] not in ("ValidatingWebhookConfiguration", "Deployment")]
    )
    port = free_port()
    (hook,) = config["webhooks"]
    path = hook["clientConfig"]["service"]["path"]
    hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}"}
    answer = kube.request("POST", CONFIGS, config)
    assert answer.ok, answer.message
    labelled = kube.request(
        "PATCH", f"/api/v1/namespaces/{ns}", {"metadata": {"labels": {SELECTOR_LABEL: ns}}}, MERGE
    )
    assert labelled.ok, labelled.message
    kubeconfig = kube.service_account_kubeconfig(ns, service_account, tmp_path / "sa-kubeconfig")
    start_operator(
        ns,
        extra_env={
            "KUBECONFIG": str(kubeconfig),
            "TUNEFORGE_OPERATOR_WEBHOOK_PORT": str(port),
            "TUNEFORGE_OPERATOR_WEBHOOK_HOSTS": "127.0.0.1",
            "TUNEFORGE_OPERATOR_WEBHOOK_NAMESPACE": ns,
            "TUNEFORGE_OPERATOR_WEBHOOK_SECRET": secret_name,
            "TUNEFORGE_OPERATOR_WEBHOOK_CONFIGURATION": config["metadata"]["name"],
            "TUNEFORGE_OPERATOR_WEBHOOK_CERT_DIR": str(tmp_path / "certs"),
            # the chart's RBAC reads only its own runtimes ConfigMap (the webhook reads it too)
            "TUNEFORGE_OPERATOR_RUNTIME_CONFIGMAP": one(docs, "ConfigMap", "-runtimes")["metadata"][
                "name"
            ],
        },
    )
    try:
        yield {
            "namespace": ns,
            "service_account": service_account,
            "secret": secret_name,
            "config": config["metadata"]["name"],
        }
    finally:
        kube.request("DELETE", f"{CONFIGS}/{config['metadata']['name']}")
        delete_all(kube, created)


def test_the_chart_service_account_provisions_the_webhook_and_it_refuses(
    kube: KubeCluster, installed: dict[str, Any]
) -> None:
    ns = installed["namespace"]
    bad = valid_manifest("dotted")
    bad["spec"]["dataset"]["uri"] = "s3://bucket/../../etc"

    def refused() -> str | None:
        answer = kube.request("POST", JOBS.format(ns=ns), bad)
        return answer.message if answer.status == 422 and "denied" in answer.message else None

    message = wait_until("the webhook to refuse a '..' URI", refused, timeout_s=60)
    assert "spec.dataset.uri: 's3://bucket/../../etc' has a '.' or '..' path segment" in message
    secret = kube.request("GET", f"/api/v1/namespaces/{ns}/secrets/{installed['secret']}")
    assert secret.ok and secret.body["type"] == "kubernetes.io/tls", secret.message
    good = kube.request("POST", JOBS.format(ns=ns), valid_manifest("fine"))
    assert good.status == 201, good.message


def test_the_webhook_rbac_grants_nothing_beyond_its_secret_and_configuration(
    kube: KubeCluster, installed: dict[str, Any]
) -> None:
    ns = installed["namespace"]
    other_name = f"other-{ns}"[:63].rstrip("-")
    other = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": other_name},
        "webhooks": [],
    }
    assert kube.request("POST", CONFIGS, other).ok
    try:
        operator = as_service_account(kube, ns, installed["service_account"])
        own = operator.request("GET", f"{CONFIGS}/{installed['config']}")
        assert own.status == 200, own.message
        foreign = operator.request(
            "PATCH", f"{CONFIGS}/{other_name}", {"metadata": {"labels": {"x": "y"}}}, MERGE
        )
        assert foreign.status == 403, foreign.message
        assert operator.request("GET", CONFIGS).status == 403
        secrets_path = f"/api/v1/namespaces/{ns}/secrets"
        assert operator.request("GET", f"{secrets_path}/{installed['secret']}").status == 200
        assert operator.request("GET", secrets_path).status == 403
    finally:
        kube.request("DELETE", f"{CONFIGS}/{other_name}")
