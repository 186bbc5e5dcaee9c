"""Shared sample objects for the operator's unit tests."""

from __future__ import annotations

from typing import Any

from tuneforge.api import FineTuneJob
from tuneforge.api.runtime import TrainingRuntime

JOB_UID = "0c6a2f4e-1111-2222-3333-444455556666"


def job_manifest(**spec_overrides: Any) -> dict[str, Any]:
    """A FineTuneJob as read from the API server."""
    spec: dict[str, Any] = {
        "method": "lora",
        "dataset": {"uri": "s3://data/dogs", "instancePrompt": "a photo of sks dog"},
        "output": {"registeredModel": "sks-dog"},
        "training": {"maxSteps": 100, "batchSize": 2},
        "resources": {"workers": 2, "gpusPerWorker": 1, "cpusPerWorker": 4},
    }
    spec.update(spec_overrides)
    return {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "dog", "namespace": "team-a", "uid": JOB_UID, "generation": 1},
        "spec": spec,
    }


def job(**spec_overrides: Any) -> FineTuneJob:
    """A validated FineTuneJob."""
    return FineTuneJob.model_validate(job_manifest(**spec_overrides))


def runtime(**overrides: Any) -> TrainingRuntime:
    """A runtime like a platform team would define."""
    data: dict[str, Any] = {
        "image": "registry.example/tuneforge-trainer:0.1.0",
        "rayVersion": "2.60.0",
        "gpuResourceName": "amd.com/gpu",
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "serviceAccountName": "trainer",
        "s3SecretRef": "s3-credentials",
        "mlflowSecretRef": "mlflow-credentials",
        "env": {"HF_HUB_OFFLINE": "1"},
    }
    data.update(overrides)
    return TrainingRuntime.model_validate(data)
