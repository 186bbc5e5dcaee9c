"""`helm lint --strict` and `helm template` of the chart, validated with kubernetes-validate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.unit.helm.helmchart import chart_dependencies, lint, render
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


def test_dependencies_are_optional_and_off_by_default() -> None:
    dependencies = {d["name"]: d for d in chart_dependencies()}
    assert set(dependencies) == {"kuberay-operator", "minio", "mlflow"}
    for name, dependency in dependencies.items():
        assert dependency["condition"] == f"{name}.enabled"
        assert dependency["repository"].startswith("https://")
    assert "ray-project.github.io/kuberay-helm" in dependencies["kuberay-operator"]["repository"]
    assert not any(VARIANTS["defaults"].get(name, {}).get("enabled") for name in dependencies)


def test_dependency_conditions_switch_the_subcharts(tmp_path: Path, helm_bin: str) -> None:
    from tests.unit.helm.helmchart import chart_copy

    del helm_bin
    marker = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stand-in-{}\n"
    chart = chart_copy(
        tmp_path,
        {name: marker.format(name) for name in ("kuberay-operator", "minio", "mlflow")},
    )
    off = {d["metadata"]["name"] for d in render(chart)}
    assert not any(name.startswith("stand-in-") for name in off)
    on = {d["metadata"]["name"] for d in render(chart, {"minio": {"enabled": True, "mode": "x"}})}
    assert "stand-in-minio" in on and "stand-in-mlflow" not in on


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
