"""What the real API server publishes and answers for the FineTuneJob CRD, without the webhook:
every optional section keeps its type and properties in the OpenAPI document that
`kubectl explain` and kubectl's client-side validation read, and an unknown method gets one
error naming `spec.method` and its allowed values."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.fixtures.kube import KubeCluster
from tests.integration.operator.harness import JOBS, wait_until
from tests.unit.api.invalid_jobs import valid_manifest

pytestmark = pytest.mark.integration
DEFINITION = "io.tuneforge.v1alpha1.FineTuneJob"


def published(kube: KubeCluster) -> dict[str, Any]:
    """The FineTuneJob definition in /openapi/v2 (published shortly after the CRD is)."""

    def definition() -> dict[str, Any] | None:
        answer = kube.request("GET", "/openapi/v2")
        found = (answer.body.get("definitions") or {}).get(DEFINITION) if answer.ok else None
        return dict(found) if found else None

    result: dict[str, Any] = wait_until("the FineTuneJob OpenAPI definition", definition, 60)
    return result


def test_optional_sections_are_published_with_type_and_properties(kube: KubeCluster) -> None:
    spec = published(kube)["properties"]["spec"]["properties"]
    assert spec["lora"]["type"] == "object"
    assert {"rank", "alpha", "dropout", "targetModules", "trainTextEncoder"} <= set(
        spec["lora"]["properties"]
    )
    assert "exportLora" in spec["dreambooth"]["properties"]
    assert "placeholderToken" in spec["textualInversion"]["properties"]
    assert spec["queueName"]["type"] == "string"
    assert spec["activeDeadlineSeconds"]["type"] == "integer"
    assert spec["training"]["properties"]["maxSteps"]["type"] == "integer"


def test_status_is_published_with_its_fields(kube: KubeCluster) -> None:
    status = published(kube)["properties"]["status"]
    assert status["type"] == "object"
    assert {"conditions", "rayJobName", "progress", "mlflow"} <= set(status["properties"])


def test_an_unknown_method_gets_only_the_method_error(
    kube: KubeCluster, kube_namespace: str
) -> None:
    manifest = valid_manifest("hypernetwork")
    manifest["spec"]["method"] = "hypernetwork"
    answer = kube.request("POST", JOBS.format(ns=kube_namespace), manifest)
    assert answer.status == 422, answer.message
    causes = answer.body["details"]["causes"]
    assert [cause["field"] for cause in causes] == ["spec.method"], causes
    assert '"lora", "dreambooth", "textualInversion"' in causes[0]["message"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl on PATH")
def test_kubectl_explains_lora_and_refuses_a_misspelt_field_on_the_client(
    kube: KubeCluster, kube_namespace: str, tmp_path: Any
) -> None:
    published(kube)
    env = {**kube.env(), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", *args], capture_output=True, text=True, env=env, timeout=60
        )

    explained = kubectl("explain", "finetunejobs.spec.lora")
    assert explained.returncode == 0, explained.stderr
    assert "alpha" in explained.stdout and "targetModules" in explained.stdout
    manifest = valid_manifest("typo")
    manifest["spec"]["lora"]["alhpa"] = 32
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(manifest))
    created = kubectl("create", "-n", kube_namespace, "-f", str(tmp_path / "typo.yaml"))
    assert created.returncode != 0
    assert 'unknown field "alhpa"' in created.stderr, created.stderr
