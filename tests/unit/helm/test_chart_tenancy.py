"""The chart's tenancy values: rendered into the runtimes ConfigMap as the operator parses it,
runtimes limited by allowedNamespaces, no platform Secret copied into a team that has its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.helm.helmchart import CHART_DIR, find, one, render, template
from tuneforge.api.runtime import TENANCY_KEY, parse_runtimes
from tuneforge.tenancy import TenantPolicy, parse_tenancy

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
TEAMS: dict[str, Any] = {
    "operator": {"watchNamespaces": ["team-a", "team-b"]},
    "runtimes": {"b-gpu": {"allowedNamespaces": ["team-b"]}},
    "tenancy": {
        "enabled": True,
        "namespaces": {
            "team-a": {
                "storagePrefixes": ["s3://team-a"],
                "baseModelPrefixes": ["hf://stable-diffusion-v1-5"],
                "checkpointUri": "s3://team-a/checkpoints",
                "s3SecretRef": "team-a-s3",
                "mlflowSecretRef": "team-a-mlflow",
            },
            "team-b": {"storagePrefixes": ["s3://team-b"], "modelNames": ["dogs"]},
        },
    },
}


def test_tenancy_values_have_exactly_the_model_fields() -> None:
    tenant = SCHEMA["properties"]["tenancy"]["properties"]["namespaces"]["additionalProperties"]
    aliases = {field.alias or name for name, field in TenantPolicy.model_fields.items()}
    assert set(tenant["properties"]) == aliases


def test_the_policy_and_runtimes_render_as_the_operator_reads_them(chart: Path) -> None:
    data = one(render(chart, TEAMS), "ConfigMap", "-runtimes")["data"]
    tenancy = parse_tenancy(data[TENANCY_KEY])
    assert tenancy is not None
    assert tenancy.scope("team-a").tenant == TenantPolicy.model_validate(
        TEAMS["tenancy"]["namespaces"]["team-a"]
    )
    runtimes = parse_runtimes(data)
    assert set(runtimes) == {"default", "b-gpu"}
    b_gpu, default = runtimes["b-gpu"], runtimes["default"]
    assert not isinstance(b_gpu, str) and not isinstance(default, str)
    assert b_gpu.allowed_namespaces == ["team-b"] and not b_gpu.allows("team-a")
    assert default.allowed_namespaces is None  # the empty list of values: every namespace


def test_a_team_with_its_own_secrets_gets_no_platform_copy(chart: Path) -> None:
    secrets = {
        (s["metadata"]["namespace"], s["metadata"]["name"])
        for s in find(render(chart, TEAMS), "Secret")
    }
    assert ("team-b", "tf-tuneforge-s3") in secrets and ("team-b", "tf-tuneforge-mlflow") in secrets
    assert not [name for ns, name in secrets if ns == "team-a"]


def test_without_tenancy_there_is_no_policy(chart: Path) -> None:
    assert TENANCY_KEY not in one(render(chart), "ConfigMap", "-runtimes")["data"]


def _with(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = json.loads(json.dumps(TEAMS))
    values.update(changes)
    return values


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (
            _with(operator={"watchNamespaces": ["team-a", "team-b", "team-c"]}),
            "watched namespace team-c has no entry in tenancy.namespaces",
        ),
        (
            _with(operator={"clusterWide": True}, tenancy={"enabled": True, "namespaces": {}}),
            "tenancy.namespaces is empty",
        ),
        (
            _with(tenancy={"enabled": True, "namespaces": {"team-a": {"storagePrefixes": ["a"]}}}),
            "storagePrefixes",
        ),
        (
            _with(tenancy={"enabled": True, "namespaces": {"team-a": {"bukets": ["s3://x"]}}}),
            "bukets",
        ),
    ],
)
def test_an_incomplete_policy_fails_to_render_naming_the_fix(
    chart: Path, values: dict[str, Any], complaint: str
) -> None:
    result = template(chart, values)
    assert result.returncode != 0 and complaint in result.output, result.output
