"""Names shared by trainer, operator, serving and SDK: MLflow tags and metrics, adapter files.

Every component reads these constants instead of spelling the strings itself, so a rename
is one change here.
"""

from __future__ import annotations

from enum import Enum
from typing import Final


class Tag:
    """MLflow tag names (on runs and on model versions)."""

    JOB_UID: Final = "tuneforge.job_uid"
    """FineTuneJob uid: finds a job's run (runs) and its registered version (versions)."""
    JOB_NAME: Final = "tuneforge.job_name"
    """FineTuneJob name."""
    JOB_NAMESPACE: Final = "tuneforge.job_namespace"
    """FineTuneJob namespace (runs)."""
    METHOD: Final = "tuneforge.method"
    """Training method of a registered version."""
    BASE_MODEL: Final = "tuneforge.base_model"
    """Base model URI of a registered version."""
    MODEL_VERSION: Final = "tuneforge.model_version"
    """The version number the run registered, as text (runs)."""
    SOURCE: Final = "tuneforge.source"
    """Where a version came from when not trained here: `import` (runs and versions)."""
    SOURCE_SHA256: Final = "tuneforge.source_sha256"
    """sha256 of the imported file, as the user gave it."""
    SOURCE_LAYOUT: Final = "tuneforge.source_layout"
    """The imported file's layout: `diffusers`, `kohya`, `diffusers-embedding`, `a1111-embedding`."""
    SOURCE_FILE: Final = "tuneforge.source_file"
    """The imported file's name."""


class Metric:
    """MLflow metric names the trainer logs and the operator and SDK read."""

    STEP: Final = "step"
    """Optimizer steps done."""
    LOSS: Final = "loss"
    """Training loss of the last step."""
    LEARNING_RATE: Final = "lr"
    """Learning rate of the last step."""
    IMAGES_PER_S: Final = "images_per_s"
    """Training throughput."""


ADAPTER_ARTIFACT_PATH: Final = "adapter"
"""Run artifact folder that holds an adapter's files."""
ADAPTER_MANIFEST: Final = "tuneforge-adapter.json"
"""The manifest beside an adapter's weights."""
LORA_WEIGHTS: Final = "pytorch_lora_weights.safetensors"
"""LoRA weights in diffusers' layout (`unet.…` and `text_encoder.…` keys)."""
TI_EMBEDDINGS: Final = "learned_embeds.safetensors"
"""Textual-inversion embeddings (one row per placeholder token)."""
KOHYA_LORA_WEIGHTS: Final = "pytorch_lora_weights.kohya.safetensors"
"""The same LoRA in the kohya-ss / A1111 / ComfyUI layout (`lora_unet_…`, `.alpha` = rank)."""


class AdapterFormat(str, Enum):
    """Layouts of an adapter's LoRA: `spec.output.formats` and the manifest's `formats`."""

    DIFFUSERS = "diffusers"
    """diffusers / peft keys (`pytorch_lora_weights.safetensors`), the one serving reads."""
    KOHYA = "kohya"
    """kohya-ss / A1111 / ComfyUI keys (`pytorch_lora_weights.kohya.safetensors`)."""


DEFAULT_LORA_TARGETS: Final = ("to_q", "to_k", "to_v", "to_out.0")
"""UNet modules LoRA targets unless a job names others (the attention projections)."""
DEFAULT_TEXT_ENCODER_LORA_TARGETS: Final = ("q_proj", "k_proj", "v_proj", "out_proj")
"""Text-encoder modules that carry serving's LoRA slots unless configured otherwise."""
DEFAULT_SLOT_RANK: Final = 16
"""Rank of serving's LoRA slots unless configured otherwise (adapters up to it are served)."""


def default_lora_alpha(rank: int) -> float:
    """LoRA alpha when a job gives none: the rank, so the update's scale alpha/rank is 1.

    This is what the diffusers training scripts do (`lora_alpha=args.rank`).
    """
    return float(rank)


def job_run_filter(job_uid: str) -> str:
    """MLflow `search_runs` filter that finds the run of the FineTuneJob with this uid.

    MLflow's filter parser has no escapes (it takes everything between the quotes as is),
    so the value goes in the quote character it does not contain.
    """
    for quote in ("'", '"'):
        if quote not in job_uid:
            return f"tags.`{Tag.JOB_UID}` = {quote}{job_uid}{quote}"
    raise ValueError(f"a job uid with both quote characters cannot be searched: {job_uid!r}")
