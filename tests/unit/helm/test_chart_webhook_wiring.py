"""`webhook.enabled` wires the admission webhook into the operator Deployment the chart runs.

Without the wiring the chart would install a ValidatingWebhookConfiguration whose Service
has nothing behind it (`failurePolicy: Fail` then blocks every FineTuneJob).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.helm.helmchart import one, render
from tests.unit.helm.test_chart_networkpolicy import _rules_by_port


def _operator(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(docs, "Deployment", "-operator")
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_the_enabled_webhook_is_served_by_the_operator(chart: Path) -> None:
    docs = render(chart, {"webhook": {"enabled": True}})
    container = _operator(docs)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert ports["webhook"] == 9443
    assert env["TUNEFORGE_OPERATOR_WEBHOOK_PORT"] == "9443"
    service = one(docs, "Service", "-webhook")
    assert service["spec"]["ports"][0]["targetPort"] in (9443, "webhook")
    configuration = one(docs, "ValidatingWebhookConfiguration")
    assert (
        configuration["webhooks"][0]["clientConfig"]["service"]["name"]
        == (service["metadata"]["name"])
    )
    assert 9443 in _rules_by_port(one(docs, "NetworkPolicy", "-operator"))


def test_a_disabled_webhook_leaves_the_operator_without_it(chart: Path) -> None:
    docs = render(chart, {"webhook": {"enabled": False}})
    container = _operator(docs)
    assert "webhook" not in {port["name"] for port in container["ports"]}
    assert not [item for item in container["env"] if "WEBHOOK" in item["name"]]
    assert not [doc for doc in docs if doc["kind"] == "ValidatingWebhookConfiguration"]
