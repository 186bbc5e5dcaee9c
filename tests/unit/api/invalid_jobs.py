"""The table of invalid FineTuneJobs, shared by the pydantic test and the apiserver test.

Each case starts from `valid_manifest()` (a complete, valid LoRA job), changes it with
`set_`/`unset` (dotted camelCase paths), and names the `field` that both the pydantic
models and the real apiserver must name in their error. Cases here are rejected by both;
rules only pydantic can check (comparisons between two values) are in
`PYDANTIC_ONLY_CASES`, which the apiserver test does not use.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

TI_SECTION = {"placeholderToken": "<sks-cat>", "initializerToken": "cat"}


def valid_manifest(name: str = "valid-job") -> dict[str, Any]:
    """A complete, valid LoRA FineTuneJob the cases start from."""
    return {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "method": "lora",
            "dataset": {"uri": "s3://datasets/dogs/", "instancePrompt": "a photo of sks dog"},
            "training": {"maxSteps": 100, "learningRate": 0.0001},
            "lora": {"rank": 8, "alpha": 8, "dropout": 0.0},
            "resources": {"workers": 2, "memoryPerWorker": "16Gi", "strategy": "ddp"},
            "output": {"registeredModel": "dogs-lora"},
        },
    }


@dataclass(frozen=True)
class InvalidCase:
    """One invalid FineTuneJob and the field its error must name."""

    id: str
    field: str
    """Dotted camelCase path (e.g. `spec.lora.rank`) that the error message must contain."""
    set_: dict[str, Any] = field(default_factory=dict)
    """Paths to set (created as needed), applied in order."""
    unset: tuple[str, ...] = ()
    """Paths to remove, applied after `set_`."""
    message: str | None = None
    """The readable line (`tuneforge.api.base.error_messages`) the error must contain, if set."""

    def manifest(self, name: str | None = None) -> dict[str, Any]:
        """The invalid manifest (a fresh copy), optionally renamed."""
        data = valid_manifest(name or self.id)
        for path, value in self.set_.items():
            *parents, leaf = path.split(".")
            node = data
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = copy.deepcopy(value)
        for path in self.unset:
            *parents, leaf = path.split(".")
            node = data
            for key in parents:
                node = node[key]
            del node[leaf]
        return data


def _ti(**extra: Any) -> dict[str, Any]:
    return {**TI_SECTION, **extra}


INVALID_CASES: list[InvalidCase] = [
    InvalidCase(
        "base-model-variant-not-fp16", "spec.baseModel.variant", {"spec.baseModel.variant": "bf16"}
    ),
    # --- cross-field rules (pydantic model validator / CRD anyOf rules)
    InvalidCase(
        "textual-inversion-without-section",
        "spec.textualInversion",
        {"spec.method": "textualInversion"},
        unset=("spec.lora",),
    ),
    InvalidCase(
        "textual-inversion-section-with-lora-method",
        "spec.textualInversion",
        {"spec.textualInversion": _ti()},
    ),
    InvalidCase(
        "pivotal-without-textual-inversion-section",
        "spec.textualInversion",
        {"spec.method": "pivotal"},
    ),
    InvalidCase(
        "pivotal-section-with-lora-method",
        "spec.pivotal",
        {"spec.pivotal": {"embeddingWarmupSteps": 10}},
    ),
    InvalidCase(
        "textual-inversion-section-with-dreambooth",
        "spec.textualInversion",
        {"spec.method": "dreambooth", "spec.textualInversion": _ti()},
        unset=("spec.lora",),
    ),
    InvalidCase(
        "prior-preservation-without-class-prompt",
        "spec.dataset.classPrompt",
        {"spec.method": "dreambooth", "spec.dreambooth": {"priorPreservation": True}},
        unset=("spec.lora",),
    ),
    InvalidCase(
        "lora-section-with-textual-inversion",
        "spec.lora",
        {"spec.method": "textualInversion", "spec.textualInversion": _ti()},
    ),
    InvalidCase(
        "lora-section-with-dreambooth-without-export-lora",
        "spec.dreambooth.exportLora",
        {"spec.method": "dreambooth", "spec.dreambooth": {"exportLora": False}},
    ),
    InvalidCase(
        "dreambooth-section-with-lora-method",
        "spec.dreambooth",
        {"spec.dreambooth": {"priorPreservation": False}},
    ),
    InvalidCase(
        "extract-lora-with-rank-and-energy",
        "spec.dreambooth.extractLora",
        {
            "spec.method": "dreambooth",
            "spec.dreambooth": {"extractLora": {"rank": 4, "energy": 0.5}},
        },
        unset=("spec.lora",),
    ),
    InvalidCase(
        "extract-lora-with-neither",
        "spec.dreambooth.extractLora",
        {"spec.method": "dreambooth", "spec.dreambooth": {"extractLora": {}}},
        unset=("spec.lora",),
    ),
    InvalidCase(
        "extract-lora-with-export-lora",
        "spec.dreambooth.extractLora",
        {
            "spec.method": "dreambooth",
            "spec.dreambooth": {"exportLora": True, "extractLora": {"rank": 4}},
        },
    ),
    InvalidCase(
        "extract-lora-registered-model-too-long",
        "spec.output.registeredModel",
        {
            "spec.method": "dreambooth",
            "spec.dreambooth": {"extractLora": {"rank": 4}},
            "spec.output.registeredModel": "m" * 124,
        },
        unset=("spec.lora",),
    ),
    # --- enums
    InvalidCase(
        "unknown-method",
        "spec.method",
        {"spec.method": "hypernetwork"},
        message="spec.method: 'hypernetwork' is not allowed: use one of 'lora', 'dreambooth'",
    ),
    InvalidCase(
        "unknown-strategy", "spec.resources.strategy", {"spec.resources.strategy": "horovod"}
    ),
    InvalidCase(
        "unknown-lr-scheduler",
        "spec.training.lrScheduler",
        {"spec.training.lrScheduler": "exponential"},
    ),
    InvalidCase(
        "unknown-mixed-precision",
        "spec.training.mixedPrecision",
        {"spec.training.mixedPrecision": "fp8"},
    ),
    # --- required fields
    InvalidCase("missing-method", "spec.method", unset=("spec.method",)),
    InvalidCase("missing-dataset", "spec.dataset", unset=("spec.dataset",)),
    InvalidCase(
        "missing-output-registered-model",
        "spec.output.registeredModel",
        {"spec.output": {"alias": "candidate"}},
    ),
    InvalidCase(
        "textual-inversion-without-placeholder-token",
        "spec.textualInversion.placeholderToken",
        {"spec.method": "textualInversion", "spec.textualInversion": {"initializerToken": "cat"}},
        unset=("spec.lora",),
    ),
    # --- ranges
    InvalidCase("lora-rank-0", "spec.lora.rank", {"spec.lora.rank": 0}),
    InvalidCase("lora-dropout-1", "spec.lora.dropout", {"spec.lora.dropout": 1.0}),
    InvalidCase("learning-rate-0", "spec.training.learningRate", {"spec.training.learningRate": 0}),
    InvalidCase("max-steps-0", "spec.training.maxSteps", {"spec.training.maxSteps": 0}),
    InvalidCase("zero-workers", "spec.resources.workers", {"spec.resources.workers": 0}),
    InvalidCase(
        "negative-gpus", "spec.resources.gpusPerWorker", {"spec.resources.gpusPerWorker": -1}
    ),
    InvalidCase(
        "textual-inversion-zero-vectors",
        "spec.textualInversion.numVectors",
        {"spec.method": "textualInversion", "spec.textualInversion": _ti(numVectors=0)},
        unset=("spec.lora",),
    ),
    InvalidCase(
        "pivotal-embedding-learning-rate-0",
        "spec.pivotal.embeddingLearningRate",
        {
            "spec.method": "pivotal",
            "spec.textualInversion": _ti(),
            "spec.pivotal": {"embeddingLearningRate": 0},
        },
    ),
    InvalidCase(
        "guidance-scale-too-high",
        "spec.validation.guidanceScale",
        {"spec.validation": {"guidanceScale": 100}},
    ),
    InvalidCase(
        "resolution-not-multiple-of-8", "spec.dataset.resolution", {"spec.dataset.resolution": 500}
    ),
    # --- patterns
    InvalidCase(
        "bad-memory-quantity",
        "spec.resources.memoryPerWorker",
        {"spec.resources.memoryPerWorker": "16 GB"},
    ),
    InvalidCase(
        "bad-registered-model-name",
        "spec.output.registeredModel",
        {"spec.output.registeredModel": "my model!"},
    ),
    InvalidCase("bad-alias", "spec.output.alias", {"spec.output.alias": "1st"}),
    InvalidCase(
        "dataset-uri-over-http",
        "spec.dataset.uri",
        {"spec.dataset.uri": "http://example.com/images"},
    ),
    InvalidCase(
        "placeholder-token-with-space",
        "spec.textualInversion.placeholderToken",
        {
            "spec.method": "textualInversion",
            "spec.textualInversion": _ti(placeholderToken="<my cat>"),
        },
        unset=("spec.lora",),
    ),
    InvalidCase("bad-runtime-name", "spec.runtime", {"spec.runtime": "GPU_Runtime"}),
    InvalidCase("bad-queue-name", "spec.queueName", {"spec.queueName": "Batch Queue"}),
    # --- types
    InvalidCase("workers-as-text", "spec.resources.workers", {"spec.resources.workers": "two"}),
]

PYDANTIC_ONLY_CASES: list[InvalidCase] = [
    # OpenAPI cannot compare two values; the operator validates with the models and reports
    # these as a condition instead.
    InvalidCase(
        "warmup-longer-than-training",
        "spec.training.lrWarmupSteps",
        {"spec.training.lrWarmupSteps": 500},
    ),
    InvalidCase(
        "pivotal-warmup-as-long-as-training",
        "spec.pivotal.embeddingWarmupSteps",
        {
            "spec.method": "pivotal",
            "spec.textualInversion": _ti(),
            "spec.pivotal": {"embeddingWarmupSteps": 100},
        },
    ),
]

LONG_NAME = "a" * 64

ADMISSION_CASES: list[InvalidCase] = [
    # Accepted by the CRD schema (the apiserver prunes unknown fields, allows 253-character
    # names and any path), refused by the models and so by the admission webhook.
    InvalidCase(
        "unknown-field",
        "spec.lora.rnak",
        {"spec.lora.rnak": 8},
        message="spec.lora.rnak: unknown field (did you mean rank?)",
    ),
    InvalidCase(
        "misspelt-lora-alpha",
        "spec.lora.alhpa",
        {"spec.lora.alhpa": 32},
        message="spec.lora.alhpa: unknown field (did you mean alpha?)",
    ),
    InvalidCase(
        "misspelt-max-steps",
        "spec.training.maxStep",
        {"spec.training.maxStep": 10},
        message="spec.training.maxStep: unknown field (did you mean maxSteps?)",
    ),
    InvalidCase(
        "unknown-top-level-field",
        "spec.fooBar",
        {"spec.fooBar": 1},
        message="spec.fooBar: unknown field (known fields: activeDeadlineSeconds,",
    ),
    InvalidCase(
        "name-too-long-for-labels",
        "metadata.name",
        {"metadata.name": LONG_NAME},
        message="metadata.name: 64 characters is too long: at most 63",
    ),
    InvalidCase(
        "dataset-uri-with-dot-dot",
        "spec.dataset.uri",
        {"spec.dataset.uri": "s3://bucket/../../etc"},
        message="spec.dataset.uri: 's3://bucket/../../etc' has a '.' or '..' path segment",
    ),
    InvalidCase(
        "base-model-uri-with-dot",
        "spec.baseModel.uri",
        {"spec.baseModel": {"uri": "s3://models/./sd15"}},
        message="spec.baseModel.uri: 's3://models/./sd15' has a '.' or '..' path segment",
    ),
    InvalidCase(
        "class-data-uri-ending-in-dot-dot",
        "spec.dataset.classDataUri",
        {"spec.dataset.classDataUri": "/data/class/.."},
        message="spec.dataset.classDataUri: '/data/class/..' has a '.' or '..' path segment",
    ),
]
"""Cases only the models (and the webhook that runs them) refuse, with the line they print."""
