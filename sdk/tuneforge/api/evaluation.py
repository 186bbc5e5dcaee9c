"""Result quality: `spec.evaluation`, `output.promoteIf` and the quality gate's verdict.

The protocol is the DreamBooth paper's (Ruiz et al., 2023): subject fidelity as DINO and
CLIP-I (mean cosine similarity between the embeddings of generated and real subject images)
and prompt fidelity as CLIP-T (mean cosine similarity between a prompt's CLIP text embedding
and the embeddings of the images generated from it). The default prompts are the paper's
object prompt list with the job's subject put in; the default evaluator models are the
paper's (DINO ViT-S/16, CLIP ViT-B/32).

`gate_verdict(metrics, promote_if)` is the pure rule the trainer applies before it moves
`output.alias`; `QualityGateVerdict` travels as JSON in the run tag `QUALITY_GATE_TAG`, where
the operator and embedded mode read it to set the `QualityGate` condition.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pydantic import Field, field_validator

from tuneforge.api.base import ApiModel
from tuneforge.api.status import (
    ConditionStatus,
    ConditionType,
    EvaluationStatus,
    FineTuneJobStatus,
    Reason,
)

DEFAULT_DINO_MODEL = "hf://facebook/dino-vits16"
"""DINO ViT-S/16, the paper's subject-fidelity model."""
DEFAULT_CLIP_MODEL = "hf://openai/clip-vit-base-patch32"
"""CLIP ViT-B/32, the model of the CLIP-I and CLIP-T figures the paper reports."""
EVALUATOR_URI_PATTERN = r"^(hf://|s3://|/|file://|\./).+"

QUALITY_GATE_TAG = "tuneforge.quality_gate"
"""Run and model-version tag: the gate's verdict as JSON (`QualityGateVerdict.to_json`)."""
GRIDS_ARTIFACT = "evaluation/grids"
"""Run artifact folder of the final grids (`grid_file(i)` per prompt) and `prompts.txt`."""
METRIC_PREFIX = "eval/"
"""MLflow metric key prefix: `eval/dino`, `eval/clipI`, `eval/clipT` (the step is the training
step; step 0 is the base model before training)."""

PAPER_OBJECT_PROMPTS = (
    "a {} in the jungle",
    "a {} in the snow",
    "a {} on the beach",
    "a {} on a cobblestone street",
    "a {} on top of pink fabric",
    "a {} on top of a wooden floor",
    "a {} with a city in the background",
    "a {} with a mountain in the background",
    "a {} with a blue house in the background",
    "a {} on top of a purple rug in a forest",
    "a {} with a wheat field in the background",
    "a {} with a tree and autumn leaves in the background",
    "a {} with the Eiffel Tower in the background",
    "a {} floating on top of water",
    "a {} floating in an ocean of milk",
    "a {} on top of green grass with sunflowers around it",
    "a {} on top of a mirror",
    "a {} on top of the sidewalk in a crowded street",
    "a {} on top of a dirt road",
    "a {} on top of a white rug",
    "a red {}",
    "a purple {}",
    "a shiny {}",
    "a wet {}",
    "a cube shaped {}",
)
"""The DreamBooth paper's 25 prompts for objects (its dataset's `prompts_and_classes.txt`);
`{}` is the subject, e.g. `sks toy`."""


def grid_file(prompt_index: int) -> str:
    """The file name of a prompt's final grid under `GRIDS_ARTIFACT`, e.g. `prompt00.png`."""
    return f"prompt{prompt_index:02d}.png"


_SUBJECT_LEADS = ("a photo of ", "a picture of ", "an image of ", "a ", "an ", "the ")


class EvalMetric(str, Enum):
    """A result-quality metric (all in [-1, 1], higher is better)."""

    DINO = "dino"
    CLIP_I = "clipI"
    CLIP_T = "clipT"

    @property
    def mlflow_key(self) -> str:
        """The MLflow metric this is logged as, e.g. `eval/dino`."""
        return METRIC_PREFIX + self.value


class EvaluationSpec(ApiModel):
    """Measure the result as the DreamBooth paper does, after training (and at validation steps when asked)."""

    prompts: list[str] = Field(default_factory=list)
    """Prompts to generate from; empty means the paper's 25 object prompts with the subject of `dataset.instancePrompt` (`a photo of sks toy` gives `a sks toy in the jungle`, ...)."""
    images_per_prompt: int = Field(default=4, ge=1, le=16)
    """Images generated per prompt (the paper: 4), each prompt with its own fixed seed."""
    metrics: list[EvalMetric] = Field(
        default_factory=lambda: list(EvalMetric), min_length=1, max_length=3
    )
    """Metrics to compute: `dino`, `clipI` (subject fidelity) and `clipT` (prompt fidelity)."""
    dino_model: str = Field(default=DEFAULT_DINO_MODEL, pattern=EVALUATOR_URI_PATTERN)
    """DINO ViT (transformers `ViTModel` folder with safetensors): `hf://org/name`, `s3://bucket/prefix` or a local path."""
    clip_model: str = Field(default=DEFAULT_CLIP_MODEL, pattern=EVALUATOR_URI_PATTERN)
    """CLIP (transformers `CLIPModel` folder with safetensors and tokenizer): `hf://org/name`, `s3://bucket/prefix` or a local path."""
    steps: int = Field(default=25, ge=1, le=200)
    """Denoising steps per image."""
    guidance_scale: float = Field(default=7.5, ge=0, le=50)
    """Classifier-free guidance scale."""
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    """Seed of the first prompt (prompt i uses seed + i); the base model's "before" images use the same seeds."""
    at_validation_steps: bool = False
    """Also evaluate whenever `validation.everySteps` renders (metrics per step); otherwise only before and after training."""

    @field_validator("metrics")
    @classmethod
    def _unique_metrics(cls, value: list[EvalMetric]) -> list[EvalMetric]:
        if len(set(value)) != len(value):
            raise ValueError("evaluation.metrics: list each metric once (dino, clipI, clipT)")
        return value

    @field_validator("prompts")
    @classmethod
    def _no_blank_prompts(cls, value: list[str]) -> list[str]:
        if any(not prompt.strip() for prompt in value):
            raise ValueError("evaluation.prompts: prompts must not be empty strings")
        return value

    def prompts_for(self, instance_prompt: str | None) -> list[str]:
        """The prompts in force: the given ones, else the paper's list for the subject."""
        if self.prompts:
            return list(self.prompts)
        if not instance_prompt:
            raise ValueError(
                "spec.evaluation.prompts is empty and dataset.instancePrompt is unset: "
                "give evaluation prompts or an instance prompt to derive them from"
            )
        subject = subject_of(instance_prompt)
        return [template.format(subject) for template in PAPER_OBJECT_PROMPTS]


def subject_of(instance_prompt: str) -> str:
    """The subject phrase of an instance prompt: `a photo of sks toy` -> `sks toy`."""
    subject = instance_prompt.strip().rstrip(".")
    lowered = subject.lower()
    for lead in _SUBJECT_LEADS:
        if lowered.startswith(lead) and len(subject) > len(lead):
            return subject[len(lead) :].strip()
    return subject


class PromoteIf(ApiModel):
    """Minimums the evaluation must reach before `output.alias` moves to the new version."""

    dino: float | None = Field(default=None, ge=-1, le=1)
    """Minimum DINO subject fidelity (the paper: DreamBooth on SD 0.668)."""
    clip_i: float | None = Field(default=None, ge=-1, le=1)
    """Minimum CLIP-I subject fidelity (the paper: 0.803)."""
    clip_t: float | None = Field(default=None, ge=-1, le=1)
    """Minimum CLIP-T prompt fidelity (the paper: 0.305)."""

    def minimums(self) -> dict[EvalMetric, float]:
        """The minimums that are set, by metric."""
        values = {EvalMetric.DINO: self.dino, EvalMetric.CLIP_I: self.clip_i}
        values[EvalMetric.CLIP_T] = self.clip_t
        return {metric: value for metric, value in values.items() if value is not None}


@dataclass(frozen=True)
class QualityGateVerdict:
    """What the gate decided: the figures, the minimums, and whether every minimum holds."""

    passed: bool
    """True when every minimum holds (the alias moves)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Final metric values by wire name (`dino`, `clipI`, `clipT`)."""
    minimums: dict[str, float] = field(default_factory=dict)
    """The `output.promoteIf` minimums by wire name."""
    base: dict[str, float] = field(default_factory=dict)
    """The base model's values before training, when measured."""

    @property
    def failed(self) -> list[str]:
        """Wire names of the metrics below their minimum (or missing)."""
        return [
            name
            for name, minimum in self.minimums.items()
            if not (name in self.metrics and self.metrics[name] >= minimum)
        ]

    def message(self) -> str:
        """One line for the `QualityGate` condition, e.g. `dino 0.712 >= 0.6; clipT 0.2 < 0.3`."""
        parts = []
        for name in sorted(self.metrics.keys() | self.minimums.keys()):
            value = self.metrics.get(name)
            shown = "missing" if value is None else f"{value:.3f}"
            if name in self.base:
                shown += f" (base {self.base[name]:.3f})"
            minimum = self.minimums.get(name)
            if minimum is not None:
                holds = value is not None and value >= minimum
                shown += f" {'>=' if holds else '<'} {minimum:g}"
            parts.append(f"{name} {shown}")
        verdict = "passed" if self.passed else "held back"
        return f"{verdict}: " + "; ".join(parts) if parts else verdict

    def to_json(self) -> str:
        """The verdict as the JSON of `QUALITY_GATE_TAG`."""
        return json.dumps(
            {
                "passed": self.passed,
                "metrics": self.metrics,
                "minimums": self.minimums,
                "base": self.base,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> QualityGateVerdict:
        """Read `to_json`'s output; ValueError when it is not a verdict."""
        data: Any = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("passed"), bool):
            raise ValueError(f"not a quality gate verdict: {text[:200]!r}")
        return cls(
            passed=data["passed"],
            metrics={str(k): float(v) for k, v in (data.get("metrics") or {}).items()},
            minimums={str(k): float(v) for k, v in (data.get("minimums") or {}).items()},
            base={str(k): float(v) for k, v in (data.get("base") or {}).items()},
        )


def gate_verdict(
    metrics: dict[str, float],
    promote_if: PromoteIf | None,
    base: dict[str, float] | None = None,
) -> QualityGateVerdict:
    """Whether every minimum of `promote_if` holds for `metrics` (wire names).

    A metric that is missing or not a finite number fails its minimum. Without minimums the
    gate passes.
    """
    finite = {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}
    minimums = {m.value: v for m, v in (promote_if.minimums() if promote_if else {}).items()}
    passed = all(name in finite and finite[name] >= low for name, low in minimums.items())
    return QualityGateVerdict(passed, finite, minimums, dict(base or {}))


def apply_quality_gate(
    status: FineTuneJobStatus, verdict: QualityGateVerdict, generation: int | None
) -> bool:
    """Write the verdict into `status`: `evaluation` figures and the `QualityGate` condition.

    The operator (from the run tag `QUALITY_GATE_TAG`) and embedded mode call this alike.
    True when the status changed.
    """
    evaluation = EvaluationStatus(
        metrics={name: f"{value:.4f}" for name, value in sorted(verdict.metrics.items())},
        base={name: f"{value:.4f}" for name, value in sorted(verdict.base.items())},
        promoted=verdict.passed if verdict.minimums else None,
    )
    changed = status.evaluation != evaluation
    status.evaluation = evaluation
    condition_status = ConditionStatus.TRUE if verdict.passed else ConditionStatus.FALSE
    reason = Reason.QUALITY_GATE_PASSED if verdict.passed else Reason.QUALITY_GATE_FAILED
    message = verdict.message()
    if not verdict.passed:
        message += " (the version is registered; `tuneforge promote NAME VERSION --alias A --force` overrides)"
    return (
        status.set_condition(
            ConditionType.QUALITY_GATE, condition_status, reason, message, generation
        )
        or changed
    )
