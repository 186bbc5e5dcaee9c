"""The FineTuneJob spec: what to train, on what, with which resources.

Field-level limits (ranges, enums, patterns) are mirrored by the generated CRD schema.
The rules that tie a method to its sections live in `tuneforge.api.method_rules` (one class
per method, with their API-server form); `FineTuneJobSpec`'s validator checks them and the
rules between training fields. Every message names the field and the fix.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tuneforge.api.base import ApiModel
from tuneforge.api.dreambooth import DreamBoothSpec
from tuneforge.api.evaluation import EvaluationSpec, PromoteIf
from tuneforge.api.method_rules import Method, method_errors, rules_for
from tuneforge.api.pivotal import PivotalSpec
from tuneforge.contract import (
    DEFAULT_LORA_TARGETS,
    KOHYA_LORA_WEIGHTS,
    AdapterFormat,
    default_lora_alpha,
)

DEFAULT_BASE_MODEL = "hf://stable-diffusion-v1-5/stable-diffusion-v1-5"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$"
_URI_SCHEMES = ("hf://", "s3://", "file://", "./")


def refuse_dot_segments(uri: str | None) -> str | None:
    """`uri` unchanged, or a ValueError when a path segment is `.` or `..`.

    Storage prefixes are compared as strings (tenancy, checkpoints): `s3://data/../etc` would
    name another place than it seems to, so it is refused rather than normalised.
    """
    if uri is None:
        return uri
    rest = next((uri[len(s) :] for s in _URI_SCHEMES if uri.startswith(s)), uri)
    if any(segment in (".", "..") for segment in rest.split("/")):
        raise ValueError(
            f"{uri!r} has a '.' or '..' path segment: write the path without them "
            "(e.g. s3://bucket/datasets/dogs)"
        )
    return uri


class Strategy(str, Enum):
    """How the model is spread over the workers."""

    DDP = "ddp"
    FSDP = "fsdp"
    DEEPSPEED = "deepspeed"


class MixedPrecision(str, Enum):
    """Mixed precision for the forward pass, on GPUs and CPUs alike."""

    NO = "no"
    FP16 = "fp16"
    BF16 = "bf16"


class LrScheduler(str, Enum):
    """Learning-rate schedule (diffusers' `get_scheduler` names)."""

    CONSTANT = "constant"
    CONSTANT_WITH_WARMUP = "constant_with_warmup"
    LINEAR = "linear"
    COSINE = "cosine"
    COSINE_WITH_RESTARTS = "cosine_with_restarts"
    POLYNOMIAL = "polynomial"


class BaseModelSpec(ApiModel):
    """The Stable Diffusion 1.5 checkpoint to start from (a diffusers folder or one file)."""

    uri: str = Field(
        default=DEFAULT_BASE_MODEL, min_length=1, pattern=r"^(hf://|s3://|/|file://|\./).+"
    )
    """A diffusers folder (`hf://org/name`, `s3://bucket/prefix`, or a local path in embedded mode) or one original-layout `.safetensors` checkpoint (`hf://org/name/file.safetensors`, `s3://bucket/key.safetensors`, a local file)."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) for `hf://` URIs; ignored otherwise."""
    variant: Literal["fp16"] | None = None
    """Weight-file variant of a diffusers folder: `fp16` fetches the `*.fp16.safetensors` files (half the download). Training keeps its own `training.mixedPrecision`."""

    _no_dot_segments = field_validator("uri")(refuse_dot_segments)


class DatasetSpec(ApiModel):
    """The training images and how they are prepared."""

    uri: str = Field(min_length=1, pattern=r"^(s3://|/|file://|\./).+")
    """Folder of images: `s3://bucket/prefix` or a local path. A `<image>.txt` beside an image is its caption."""
    instance_prompt: str | None = Field(default=None, min_length=1)
    """Prompt used for images without a caption file, e.g. `a photo of sks dog`."""
    class_prompt: str | None = Field(default=None, min_length=1)
    """Prompt of the class for DreamBooth prior preservation, e.g. `a photo of a dog`."""
    class_data_uri: str | None = Field(default=None, pattern=r"^(s3://|/|file://|\./).+")
    """Folder of class images; missing ones are generated with the base model."""
    num_class_images: int = Field(default=100, ge=1, le=10000)
    """Number of class images for prior preservation."""
    resolution: int = Field(default=512, ge=8, le=2048, multiple_of=8)
    """Training resolution in pixels (square); a multiple of 8 (the VAE downsamples by 8)."""
    center_crop: bool = True
    """Center-crop to a square before resizing (random crop when false)."""
    random_flip: bool = False
    """Randomly flip images horizontally."""

    _no_dot_segments = field_validator("uri", "class_data_uri")(refuse_dot_segments)


class TrainingSpec(ApiModel):
    """Optimisation settings shared by all methods."""

    max_steps: int = Field(default=500, ge=1, le=1_000_000)
    """Number of optimizer steps."""
    learning_rate: float = Field(default=1e-4, gt=0, le=1)
    """Peak learning rate."""
    batch_size: int = Field(default=1, ge=1, le=512)
    """Images per worker per forward pass."""
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=1024)
    """Forward passes accumulated into one optimizer step."""
    lr_scheduler: LrScheduler = LrScheduler.CONSTANT
    """Learning-rate schedule."""
    lr_warmup_steps: int = Field(default=0, ge=0)
    """Linear warm-up steps at the start of the schedule."""
    mixed_precision: MixedPrecision = MixedPrecision.FP16
    """Autocast the forward in fp16 (with loss scaling) or bf16, on GPUs and CPUs alike; `no` trains in fp32."""
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    """Seed for noise, timesteps, data order and initialisation."""
    gradient_checkpointing: bool = False
    """Trade compute for memory in the UNet (and text encoder when trained)."""
    snr_gamma: float | None = Field(default=None, gt=0, le=100)
    """Min-SNR weighting γ (5.0 is the paper's choice); unset means plain MSE."""
    noise_offset: float = Field(default=0.0, ge=0, le=1)
    """Noise offset added to the training noise (0 disables it)."""
    max_grad_norm: float = Field(default=1.0, gt=0)
    """Gradient clipping norm."""
    checkpoint_every_steps: int = Field(default=100, ge=1)
    """Save a resumable checkpoint every N steps."""
    cache_latents: bool = False
    """Encode images with the VAE once before training (only without random flip or crop)."""


class LoraSpec(ApiModel):
    """LoRA settings (method `lora` or `pivotal`, or `dreambooth` with `exportLora`)."""

    rank: int = Field(default=4, ge=1, le=256)
    """LoRA rank r (at least 1)."""
    alpha: float | None = Field(default=None, gt=0, le=1024)
    """LoRA alpha; the update is scaled by alpha / rank. Unset means the rank (scale 1), as in the diffusers training scripts."""
    dropout: float = Field(default=0.0, ge=0, lt=1)
    """Dropout on the LoRA branch."""
    target_modules: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LORA_TARGETS), min_length=1
    )
    """UNet module names (suffixes) that receive LoRA layers; default: attention projections."""
    train_text_encoder: bool = False
    """Also add LoRA layers to the text encoder's attention projections."""

    @field_validator("target_modules")
    @classmethod
    def _no_blank_targets(cls, value: list[str]) -> list[str]:
        if any(not item.strip() for item in value):
            raise ValueError(
                "lora.targetModules: names must not be empty; use e.g. ['to_q', 'to_v']"
            )
        return value

    @model_validator(mode="after")
    def _alpha_defaults_to_rank(self) -> LoraSpec:
        if self.alpha is None:
            self.alpha = default_lora_alpha(self.rank)
        return self

    @property
    def resolved_alpha(self) -> float:
        """Alpha in force (set by validation: the given value, else the rank)."""
        return self.alpha if self.alpha is not None else default_lora_alpha(self.rank)


class TextualInversionSpec(ApiModel):
    """The new tokens learned by methods `textualInversion` and `pivotal`."""

    placeholder_token: str = Field(min_length=1, max_length=64, pattern=r"^\S+$")
    """New token learned for the concept, e.g. `<sks-cat>`; must not already be in the vocabulary."""
    initializer_token: str = Field(min_length=1, max_length=64, pattern=r"^\S+$")
    """Existing single token whose embedding initialises the new vectors, e.g. `cat`."""
    num_vectors: int = Field(default=1, ge=1, le=16)
    """Number of embedding vectors for the concept."""


class ResourcesSpec(ApiModel):
    """The Ray cluster the job trains on."""

    workers: int = Field(default=1, ge=1, le=256)
    """Number of Ray Train workers (one process each)."""
    gpus_per_worker: int = Field(default=1, ge=0, le=16)
    """GPUs per worker; 0 trains on CPU."""
    cpus_per_worker: int = Field(default=4, ge=1, le=256)
    """CPUs per worker."""
    memory_per_worker: str = Field(default="16Gi", pattern=QUANTITY_PATTERN)
    """Memory per worker as a Kubernetes quantity, e.g. `16Gi`."""
    accelerator_type: str | None = Field(default=None, min_length=1)
    """Ray accelerator type to schedule on, e.g. `A100` (optional)."""
    strategy: Strategy = Strategy.DDP
    """Distribution strategy: `ddp`, `fsdp` (FSDP2) or `deepspeed` (ZeRO)."""


class ValidationSpec(ApiModel):
    """Validation images generated during training and logged to MLflow."""

    prompts: list[str] = Field(default_factory=list)
    """Prompts to render; empty disables validation images."""
    negative_prompt: str = ""
    """Negative prompt for validation images."""
    every_steps: int = Field(default=0, ge=0)
    """Render every N steps; 0 renders only at the end."""
    num_images: int = Field(default=1, ge=1, le=16)
    """Images per prompt."""
    guidance_scale: float = Field(default=7.5, ge=0, le=50)
    """Classifier-free guidance scale."""
    steps: int = Field(default=25, ge=1, le=200)
    """Denoising steps per validation image."""


class OutputSpec(ApiModel):
    """Where the result is registered."""

    registered_model: str = Field(pattern=MODEL_NAME_PATTERN)
    """MLflow registered model that receives the adapter as a new version."""
    alias: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
    """MLflow alias set on the new version, e.g. `candidate` (optional)."""
    promote_if: PromoteIf | None = None
    """Minimums per evaluation metric (`dino`, `clipI`, `clipT`): the version is always registered, `alias` moves to it only when every minimum holds (needs `alias` and `evaluation`)."""
    formats: list[AdapterFormat] = Field(
        default_factory=lambda: [AdapterFormat.DIFFUSERS], min_length=1, max_length=2
    )
    """Layouts the registered adapter holds: `diffusers` (always listed; serving reads it) and optionally `kohya`, which adds `pytorch_lora_weights.kohya.safetensors` for A1111, ComfyUI and kohya-ss (only for a LoRA: method `lora` or `pivotal`, or `dreambooth` with `exportLora`; a pivotal adapter's embeddings stay in `learned_embeds.safetensors`)."""

    @field_validator("formats")
    @classmethod
    def _diffusers_listed_once(cls, value: list[AdapterFormat]) -> list[AdapterFormat]:
        if len(set(value)) != len(value):
            raise ValueError("output.formats: list each format once (diffusers, kohya)")
        if AdapterFormat.DIFFUSERS not in value:
            raise ValueError(
                "output.formats must include diffusers (the layout serving reads): "
                "write [diffusers, kohya]"
            )
        return value


class FineTuneJobSpec(ApiModel):
    """What a FineTuneJob trains, on what data, with which resources."""

    method: Method
    """Fine-tuning method: `lora`, `dreambooth`, `textualInversion` or `pivotal` (new tokens and a LoRA together)."""
    base_model: BaseModelSpec = Field(default_factory=BaseModelSpec)
    """Base checkpoint (default: Stable Diffusion 1.5)."""
    dataset: DatasetSpec
    """Training images."""
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    """Optimisation settings."""
    lora: LoraSpec | None = None
    """LoRA settings; defaults apply when the method uses LoRA and this is unset."""
    dreambooth: DreamBoothSpec | None = None
    """DreamBooth settings; only with method `dreambooth`."""
    textual_inversion: TextualInversionSpec | None = None
    """The new tokens; required with methods `textualInversion` and `pivotal`."""
    pivotal: PivotalSpec | None = None
    """Pivotal tuning's embedding learning rate and embeddings-only warm-up; only with method `pivotal` (defaults when unset)."""
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    """Workers and strategy."""
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    """Validation images."""
    evaluation: EvaluationSpec | None = None
    """Result quality (DINO, CLIP-I, CLIP-T as in the DreamBooth paper) before and after training; unset skips it, `{}` measures with the defaults."""
    output: OutputSpec
    """Where the adapter is registered."""
    runtime: str = Field(
        default="default", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63
    )
    """Name of the platform-owned training runtime (image, Ray version, node placement)."""
    suspend: bool = False
    """Hold the job (or pause it: the Ray cluster is deleted and the job resumes from its checkpoint)."""
    active_deadline_seconds: int | None = Field(default=None, ge=1)
    """Fail the job when it runs longer than this (passed to the RayJob)."""
    backoff_limit: int = Field(default=0, ge=0, le=100)
    """Retries of the whole RayJob after a failure (passed to the RayJob)."""
    queue_name: str | None = Field(
        default=None, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=63
    )
    """Kueue LocalQueue to admit the job through (label `kueue.x-k8s.io/queue-name`)."""
    ttl_seconds_after_finished: int = Field(default=3600, ge=0)
    """Seconds the finished Ray cluster is kept for inspection before it is deleted."""

    @model_validator(mode="after")
    def _check_combinations(self) -> FineTuneJobSpec:
        for message in cross_field_errors(self):
            raise ValueError(message)
        return self

    def effective_lora(self) -> LoraSpec | None:
        """The LoRA settings in force, with defaults, or None when the method trains no LoRA."""
        if rules_for(self.method).trains_lora(self):
            return self.lora or LoraSpec()
        return None


def cross_field_errors(spec: FineTuneJobSpec) -> list[str]:
    """Every broken cross-field rule, as messages naming the field and the fix."""
    errors = method_errors(spec)
    if spec.training.lr_warmup_steps > spec.training.max_steps:
        errors.append(
            "spec.training.lrWarmupSteps must not exceed training.maxSteps: lower the warm-up"
        )
    errors.extend(evaluation_errors(spec))
    errors.extend(output_errors(spec))
    return errors


def output_errors(spec: FineTuneJobSpec) -> list[str]:
    """`output.formats` asks for a LoRA layout from a job that trains no LoRA."""
    if AdapterFormat.KOHYA in spec.output.formats and spec.effective_lora() is None:
        return [
            f"spec.output.formats lists kohya ({KOHYA_LORA_WEIGHTS}), a LoRA layout, but this "
            f"{spec.method.value} job trains no LoRA: remove kohya, or train a LoRA "
            "(method lora or pivotal, or dreambooth with exportLora: true)"
        ]
    return []


def evaluation_errors(spec: FineTuneJobSpec) -> list[str]:
    """Broken rules between `evaluation`, `output.promoteIf` and the sections they read."""
    errors = []
    evaluation, promote_if = spec.evaluation, spec.output.promote_if
    if evaluation is not None and not evaluation.prompts and not spec.dataset.instance_prompt:
        errors.append(
            "spec.evaluation.prompts is empty and dataset.instancePrompt is unset: give "
            "evaluation prompts, or an instance prompt to derive the paper's prompts from"
        )
    if (
        evaluation is not None
        and evaluation.at_validation_steps
        and not (spec.validation.every_steps)
    ):
        errors.append(
            "spec.evaluation.atValidationSteps needs validation.everySteps >= 1: set it, "
            "or drop atValidationSteps to evaluate only before and after training"
        )
    if promote_if is None:
        return errors
    if spec.output.alias is None:
        errors.append(
            "spec.output.promoteIf decides whether output.alias moves: set output.alias "
            "(e.g. production) or remove promoteIf"
        )
    measured = set(evaluation.metrics) if evaluation is not None else set()
    unmeasured = [metric.value for metric in promote_if.minimums() if metric not in measured]
    if unmeasured:
        errors.append(
            f"spec.output.promoteIf sets a minimum for {', '.join(unmeasured)}, which "
            "spec.evaluation does not measure: add spec.evaluation (its metrics) or remove "
            "those minimums"
        )
    return errors
