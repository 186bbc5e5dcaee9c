"""`helm lint --strict` and `helm template` of the chart, validated with kubernetes-validate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.unit.helm.helmchart import CHART_DIR, lint, render
from tests.unit.helm.variants import VARIANTS

# The oldest and newest Kubernetes versions kubernetes-validate ships schemas for.
K8S_VERSIONS = ("1.25.0", "1.37.0")
# Kinds from CRDs: kubernetes-validate has no schema for them (they only warn). The RayService is
# checked against KubeRay's own CRD on the test apiserver (tests/integration/helm).
CUSTOM_KINDS = {"RayService", "KopfPeering", "ClusterKopfPeering", "ServiceMonitor"}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_lint_strict_passes(chart: Path, variant: str) -> None:
    result = lint(chart, VARIANTS[variant])
    assert result.returncode == 0, result.output
    assert "[ERROR]" not in result.output and "[WARNING]" not in result.output, result.output


def _validate(doc: dict[str, Any], version: str) -> str | None:
    """None when valid; the reason when kubernetes-validate has no schema for the kind."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError as missing:
        return str(missing)
    except kubernetes_validate.ValidationError as error:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        raise AssertionError(f"{name} is invalid for Kubernetes {version}: {error}") from error
    return None


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_template_validates_strictly(chart: Path, variant: str) -> None:
    docs = render(chart, VARIANTS[variant])
    assert len(docs) >= 10
    unchecked = set()
    for doc in docs:
        for version in K8S_VERSIONS:
            if _validate(doc, version) is not None:
                unchecked.add(doc["kind"])
    assert unchecked <= CUSTOM_KINDS, f"no schema for built-in kinds {unchecked - CUSTOM_KINDS}"
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "ServiceAccount", "ConfigMap", "Service"} <= kinds


def test_every_object_is_labelled_and_namespaced(chart: Path) -> None:
    docs = render(chart, VARIANTS["single-namespace"], release="acme", namespace="tf-system")
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
    for doc in docs:
        meta = doc["metadata"]
        labels = meta.get("labels") or {}
        assert labels.get("app.kubernetes.io/instance") == "acme", meta["name"]
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", meta["name"]
        if doc["kind"] not in cluster_scoped:
            assert meta.get("namespace"), f"{doc['kind']}/{meta['name']} has no namespace"


def test_full_name_rules(chart: Path) -> None:
    names = {d["metadata"]["name"] for d in render(chart, release="tuneforge")}
    assert "tuneforge-runtimes" in names, (
        "release `tuneforge` must give the operator's default name"
    )
    names = {d["metadata"]["name"] for d in render(chart, {"fullnameOverride": "tf"}, release="x")}
    assert {"tf-operator", "tf-runtimes"} <= names


def test_chart_has_no_dependencies_to_fetch() -> None:
    """KubeRay, MinIO and MLflow are separate releases (docs/install.md): nothing to fetch."""
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert not chart.get("dependencies"), "declared dependencies break lint on a fresh checkout"
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert not {"kuberay-operator", "minio", "mlflow"} & set(values)


def test_lint_strict_passes_on_a_fresh_checkout_with_mixed_batching(chart: Path) -> None:
    """The issue's bar: the checkout as cloned (no `helm dependency update`) lints strictly."""
    assert not (chart / "charts").exists() and not (chart / "Chart.lock").exists()
    values = {
        "serving": {
            "enabled": True,
            "auth": {"existingSecret": "serving-token"},
            "app": {"mixedBatching": {"enabled": True}},
        }
    }
    result = lint(chart, values)
    assert result.returncode == 0, result.output
    assert "[WARNING]" not in result.output and "1 chart(s) linted, 0 chart(s) failed" in (
        result.output
    ), result.output


def _notes(chart: Path, values: dict[str, Any]) -> str:
    """NOTES.txt as `helm install` prints it (client-side dry run: no cluster contacted)."""
    from tests.unit.helm.helmchart import _value_args, run_helm

    args = ["install", "tf", str(chart), "--dry-run=client", "-n", "tf-system"]
    result = run_helm([*args, *_value_args(values, chart.parent)])
    assert result.returncode == 0, result.output
    return result.stdout.split("NOTES:", 1)[1]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_notes_give_copy_paste_steps_with_a_valid_job(chart: Path, variant: str) -> None:
    import textwrap

    import yaml

    from tuneforge.api.job import FineTuneJob

    notes = _notes(chart, VARIANTS[variant])
    assert "helm test tf -n tf-system" in notes
    assert "kubectl -n tf-system rollout status deploy/tf-tuneforge-operator" in notes
    for step in ("1.", "2.", "3.", "4."):
        assert f"\n{step} " in notes, f"step {step} missing:\n{notes}"
    manifest = notes.split("<<'YAML'", 1)[1].split("\n", 1)[1].split("   YAML\n", 1)[0]
    job = FineTuneJob.model_validate(yaml.safe_load(textwrap.dedent(manifest)))
    assert job.spec.runtime in VARIANTS[variant].get("runtimes", {"default": {}})
    if "serving" in VARIANTS[variant]:
        assert "/v1/generate" in notes and "Authorization: Bearer" in notes
    if "s3" not in VARIANTS[variant]:
        assert "WARNING: s3.endpoint is empty" in notes
