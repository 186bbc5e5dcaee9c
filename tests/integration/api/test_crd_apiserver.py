"""The FineTuneJob CRD on the real 1.20 apiserver: accepted as structural, served under its
short name, status subresource semantics, printer columns, and defaults the models agree with."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.fixtures.kube import KubeCluster
from tests.unit.api.invalid_jobs import valid_manifest
from tuneforge.api import FineTuneJob
from tuneforge.api.crd import PRINTER_COLUMNS

pytestmark = pytest.mark.integration

CRD_NAME = "finetunejobs.tuneforge.io"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def _jobs(namespace: str) -> str:
    return f"/apis/tuneforge.io/v1alpha1/namespaces/{namespace}/finetunejobs"


def _create(kube: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    response = kube.request("POST", _jobs(namespace), valid_manifest(name))
    assert response.status == 201, response.message
    return dict(response.body)


def test_crd_is_structural_and_established(kube: KubeCluster) -> None:
    crd = kube.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}")
    conditions = {c["type"]: c["status"] for c in crd.body["status"]["conditions"]}
    assert conditions.get("Established") == "True"
    assert conditions.get("NamesAccepted") == "True"
    assert "NonStructuralSchema" not in conditions, crd.body["status"]["conditions"]


def test_discovery_serves_short_name_and_status_subresource(kube: KubeCluster) -> None:
    resources = kube.request("GET", "/apis/tuneforge.io/v1alpha1").body["resources"]
    by_name = {resource["name"]: resource for resource in resources}
    assert by_name["finetunejobs"]["shortNames"] == ["ftj"]
    assert by_name["finetunejobs"]["namespaced"] is True
    assert "finetunejobs/status" in by_name


def test_status_write_through_subresource_is_kept(kube: KubeCluster, kube_namespace: str) -> None:
    job = _create(kube, kube_namespace, "status-kept")
    job["status"] = {
        "observedGeneration": 1,
        "rayJobName": "status-kept-abc12",
        "conditions": [
            {
                "type": "Succeeded",
                "status": "Unknown",
                "reason": "Training",
                "message": "step 10 of 100",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
        "progress": {"step": 10, "totalSteps": 100, "percent": 10, "loss": "0.1234"},
        "kopf": {"progress": {"handler": {"retries": 1}}},  # kopf's bookkeeping is not pruned
    }
    written = kube.request("PUT", f"{_jobs(kube_namespace)}/status-kept/status", job)
    assert written.ok, written.message
    stored = kube.request("GET", f"{_jobs(kube_namespace)}/status-kept").body
    assert stored["status"] == job["status"]
    assert stored["metadata"]["generation"] == 1  # a status write does not bump generation
    ours = {k: v for k, v in stored["status"].items() if k != "kopf"}
    parsed = FineTuneJob.model_validate({**stored, "status": ours})
    assert parsed.status is not None and parsed.status.progress is not None


def test_empty_strings_are_accepted(kube: KubeCluster, kube_namespace: str) -> None:
    """Regression for the Go >= 1.19 build of 1.20 (see scripts/build-kube-assets.sh), which
    refused every empty string in a custom object as "must be of type string: null"."""
    manifest = valid_manifest("empty-strings")
    manifest["spec"]["validation"] = {"negativePrompt": "", "prompts": ["a dog"]}
    created = kube.request("POST", _jobs(kube_namespace), manifest)
    assert created.status == 201, created.message
    created.body["status"] = {
        "conditions": [
            {
                "type": "Succeeded",
                "status": "Unknown",
                "reason": "Pending",
                "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ]
    }
    written = kube.request("PUT", f"{_jobs(kube_namespace)}/empty-strings/status", created.body)
    assert written.ok, written.message
    assert written.body["status"]["conditions"][0]["message"] == ""


def test_status_in_a_spec_write_is_ignored(kube: KubeCluster, kube_namespace: str) -> None:
    job = _create(kube, kube_namespace, "status-ignored")
    job["status"] = {"rayJobName": "sneaky"}
    job["spec"]["training"]["maxSteps"] = 200
    updated = kube.request("PUT", f"{_jobs(kube_namespace)}/status-ignored", job)
    assert updated.ok, updated.message
    stored = kube.request("GET", f"{_jobs(kube_namespace)}/status-ignored").body
    assert stored["spec"]["training"]["maxSteps"] == 200
    assert stored["metadata"]["generation"] == 2
    assert "rayJobName" not in (stored.get("status") or {})


def test_spec_in_a_status_write_is_ignored(kube: KubeCluster, kube_namespace: str) -> None:
    job = _create(kube, kube_namespace, "spec-ignored")
    job["spec"]["training"]["maxSteps"] = 999
    job["status"] = {"observedGeneration": 1}
    written = kube.request("PUT", f"{_jobs(kube_namespace)}/spec-ignored/status", job)
    assert written.ok, written.message
    stored = kube.request("GET", f"{_jobs(kube_namespace)}/spec-ignored").body
    assert stored["spec"]["training"]["maxSteps"] == 100
    assert stored["status"] == {"observedGeneration": 1}


def test_printer_columns_show_method_progress_and_result(
    kube: KubeCluster, kube_namespace: str
) -> None:
    job = _create(kube, kube_namespace, "columns")
    job["status"] = {
        "conditions": [
            {
                "type": "Succeeded",
                "status": "True",
                "reason": "AdapterRegistered",
                "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
        "progress": {"step": 100, "totalSteps": 100, "percent": 100},
        "mlflow": {"modelName": "dogs-lora", "modelVersion": "3"},
    }
    assert kube.request("PUT", f"{_jobs(kube_namespace)}/columns/status", job).ok

    table = kube.request("GET", f"{_jobs(kube_namespace)}/columns", accept=TABLE).body
    names = [column["name"] for column in table["columnDefinitions"]]
    assert names == ["Name"] + [column["name"] for column in PRINTER_COLUMNS]
    row = dict(zip(names, table["rows"][0]["cells"], strict=True))
    assert row["Name"] == "columns"
    assert row["Method"] == "lora"
    assert row["Succeeded"] == "True" and row["Reason"] == "AdapterRegistered"
    assert row["Progress"] == 100
    assert (row["Model"], row["Version"]) == ("dogs-lora", "3")


def test_kubernetes_client_reads_jobs_as_custom_objects(
    kube: KubeCluster, kube_namespace: str
) -> None:
    _create(kube, kube_namespace, "via-client")
    objects = client.CustomObjectsApi(kube.api_client())
    listed = objects.list_namespaced_custom_object(
        "tuneforge.io", "v1alpha1", kube_namespace, "finetunejobs"
    )
    assert [FineTuneJob.model_validate(item).name for item in listed["items"]] == ["via-client"]
