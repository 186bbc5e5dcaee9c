"""Every RayJob shape the builder makes is accepted by KubeRay's own CRD, with nothing pruned."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures._kube_cluster import KubeCluster
from tests.integration.operator.harness import RAYJOBS, TEST_RUNTIME, create_job, job_manifest
from tuneforge.api import FineTuneJob
from tuneforge.api.runtime import TrainingRuntime
from tuneforge_operator.builder import build_rayjob

pytestmark = pytest.mark.integration

MINIMAL_RUNTIME = TrainingRuntime(image="registry.example/trainer:1", shm_size=None)
SHAPES: list[tuple[str, dict[str, Any], TrainingRuntime]] = [
    ("gpu-full-runtime", {}, TEST_RUNTIME),
    ("minimal-runtime", {}, MINIMAL_RUNTIME),
    (
        "cpu-lifecycle",
        {
            "resources": {
                "workers": 1,
                "gpusPerWorker": 0,
                "cpusPerWorker": 2,
                "memoryPerWorker": "4Gi",
            },
            "activeDeadlineSeconds": 600,
            "backoffLimit": 3,
            "suspend": True,
            "ttlSecondsAfterFinished": 0,
        },
        TEST_RUNTIME.model_copy(
            update={
                "gpu_resource_name": "amd.com/gpu",
                "image_pull_secrets": ["regcred"],
                "priority_class_name": "batch-low",
                "pod_labels": {"team": "vision"},
                "pod_annotations": {"sidecar.istio.io/inject": "false"},
                "head_node_selector": {"pool": "cpu"},
            }
        ),
    ),
    (
        "queued-textual-inversion",
        {
            "method": "textualInversion",
            "textualInversion": {"placeholderToken": "<sks>", "initializerToken": "dog"},
            "queueName": "team-a",
            "validation": {"prompts": ['a $HOME `x` "quoted" <sks>'], "everySteps": 10},
        },
        TEST_RUNTIME,
    ),
]


def missing_paths(sent: Any, got: Any, path: str = "") -> list[str]:
    """Paths present in `sent` that are absent or different in `got` (server defaults allowed)."""
    if isinstance(sent, dict):
        if not isinstance(got, dict):
            return [path or "/"]
        return [
            p
            for key, value in sent.items()
            for p in missing_paths(value, got.get(key, _ABSENT), f"{path}.{key}")
        ]
    if isinstance(sent, list):
        if not isinstance(got, list) or len(got) != len(sent):
            return [path]
        return [
            p
            for i, (a, b) in enumerate(zip(sent, got, strict=True))
            for p in missing_paths(a, b, f"{path}[{i}]")
        ]
    return [] if sent == got else [path]


_ABSENT = object()


@pytest.mark.parametrize(("name", "spec", "runtime"), SHAPES, ids=[s[0] for s in SHAPES])
def test_built_rayjob_reads_back_unpruned(
    kube: KubeCluster,
    kube_namespace: str,
    name: str,
    spec: dict[str, Any],
    runtime: TrainingRuntime,
) -> None:
    stored = create_job(kube, kube_namespace, job_manifest(name, **spec))
    job = FineTuneJob.model_validate(
        {
            "metadata": {
                k: stored["metadata"][k] for k in ("name", "namespace", "uid", "generation")
            },
            "spec": stored["spec"],
        }
    )
    manifest = build_rayjob(job, runtime)
    response = kube.request("POST", RAYJOBS.format(ns=kube_namespace), manifest)
    assert response.ok, response.message
    read_back = kube.request("GET", f"{RAYJOBS.format(ns=kube_namespace)}/{name}").body
    assert missing_paths(manifest["spec"], read_back["spec"]) == []
    assert missing_paths(manifest["metadata"], read_back["metadata"]) == []


def test_a_misspelt_field_would_be_caught(kube: KubeCluster, kube_namespace: str) -> None:
    """Guards the check above: KubeRay's schema prunes unknown fields, and we notice."""
    stored = create_job(kube, kube_namespace, job_manifest("misspelt"))
    job = FineTuneJob.model_validate(
        {
            "metadata": {k: stored["metadata"][k] for k in ("name", "namespace", "uid")},
            "spec": stored["spec"],
        }
    )
    manifest = build_rayjob(job, TEST_RUNTIME)
    manifest["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replica"] = 2
    assert kube.request("POST", RAYJOBS.format(ns=kube_namespace), manifest).ok
    read_back = kube.request("GET", f"{RAYJOBS.format(ns=kube_namespace)}/misspelt").body
    assert missing_paths(manifest["spec"], read_back["spec"]) == [
        ".rayClusterSpec.workerGroupSpecs[0].replica"
    ]
