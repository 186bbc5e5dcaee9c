"""What every fine-tuning method provides to the shared training loop.

A method checks its inputs before training (`preflight`, on the driver), prepares the frozen
base components (injects LoRA layers, adds placeholder tokens, unfreezes the UNet), names the
parameters it trains, says whether it trains the full model and whether batches carry class
images, builds prompts from captions, and exports a full (gathered) state dict as
diffusers-loadable files with their typed manifest sections. The loop, the data, the
distribution strategy and the checkpoints are the same for all methods; its spec rules are
in `tuneforge.api.method_rules`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from tuneforge.api import ExtractLoraSpec, FineTuneJobSpec, Method
from tuneforge.contract import EmbeddingsSection, LoraSection
from tuneforge_trainer.components import Components, Denoiser
from tuneforge_trainer.losses import diffusion_loss


@dataclass(frozen=True)
class ExportedAdapter:
    """Files written by `TrainingMethod.export` and the manifest sections that describe them."""

    files: list[str]
    lora: LoraSection | None = None
    embeddings: EmbeddingsSection | None = None
    full_model: bool = False


@dataclass(frozen=True)
class ParamGroup:
    """One optimizer parameter group: which trained parameters, at which learning rate."""

    label: str
    """What the group holds (e.g. `lora`, `embeddings`), for messages."""
    names: list[str]
    """Names (in the `Denoiser`) of the group's parameters."""
    learning_rate: float
    """Peak learning rate (the job's schedule scales it)."""
    weight_decay: float
    """AdamW weight decay."""
    starts_at_step: int = 0
    """Optimizer steps at the start during which the group's learning rate is 0."""


class TrainingMethod(ABC):
    """Base of LoRA, DreamBooth and Textual Inversion."""

    method: ClassVar[Method]
    """The spec's method (also `AdapterManifest.method`)."""
    weight_decay: ClassVar[float] = 1e-2
    """AdamW weight decay."""
    captions_required: ClassVar[bool] = True
    """Whether every image needs a caption file or `dataset.instancePrompt`."""

    def __init__(self, spec: FineTuneJobSpec, components: Components):
        """Keep the spec and the (still frozen) components."""
        self.spec = spec
        self.components = components

    # ------------------------------------------------------------------ set-up

    @classmethod  # noqa: B027 (an optional hook: most methods check nothing)
    def preflight(cls, spec: FineTuneJobSpec, model_dir: Path) -> None:
        """Check the method's settings against the base model before any worker starts.

        Raises `InvalidTrainingInput` naming the field; the default checks nothing.
        """

    @abstractmethod
    def prepare(self) -> None:
        """Inject adapters / unfreeze parameters; called once, with the same seed on every rank."""

    @property
    def trains_text_encoder(self) -> bool:
        """Whether gradients flow through the text encoder."""
        return False

    @property
    def trains_full_model(self) -> bool:
        """Whether the whole UNet trains (strategies shard it, e.g. DeepSpeed ZeRO-3)."""
        return False

    @property
    def extract_lora(self) -> ExtractLoraSpec | None:
        """How to extract a LoRA from the trained weights at the final export (None: don't)."""
        return None

    def denoiser(self) -> Denoiser:
        """The module a strategy wraps (text encoder + UNet)."""
        denoiser = Denoiser(
            self.components.text_encoder,
            self.components.unet,
            text_encoder_frozen=not self.trains_text_encoder,
        )
        if not self.trains_text_encoder:
            denoiser.text_encoder.eval()
        return denoiser

    def trainable_names(self, denoiser: Denoiser) -> list[str]:
        """Names (in `denoiser`) of the parameters this method trains."""
        return [name for name, param in denoiser.named_parameters() if param.requires_grad]

    def param_groups(self, trainable: list[str]) -> list[ParamGroup]:
        """The optimizer's parameter groups over `trainable` (default: one, at
        `training.learningRate`). Every name is in exactly one group; the first group's
        learning rate is the one logged."""
        training = self.spec.training
        return [ParamGroup("all", list(trainable), training.learning_rate, self.weight_decay)]

    def enable_gradient_checkpointing(self) -> None:
        """Trade compute for memory in the trained parts."""
        unet = self.components.unet
        if hasattr(unet, "enable_gradient_checkpointing"):
            unet.enable_gradient_checkpointing()
        if self.trains_text_encoder and hasattr(
            self.components.text_encoder, "gradient_checkpointing_enable"
        ):
            self.components.text_encoder.gradient_checkpointing_enable()

    # ------------------------------------------------------------------ data

    def prompt_for(self, caption: str | None) -> str:
        """The prompt for one instance image: its caption, else the job's instance prompt."""
        text = caption or self.spec.dataset.instance_prompt
        if not text:
            raise ValueError("image has no caption and dataset.instancePrompt is unset")
        return text

    def evaluation_instance_prompt(self) -> str | None:
        """The prompt evaluation's default prompts take their subject from (the job's)."""
        return self.spec.dataset.instance_prompt

    def expand_prompt(self, prompt: str) -> str:
        """`prompt` as the text encoder must read it (unchanged; new tokens expand)."""
        return prompt

    @property
    def uses_prior_preservation(self) -> bool:
        """Whether each batch also carries class images (DreamBooth)."""
        return False

    def loss(
        self, prediction: torch.Tensor, target: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        """The training loss of one micro-batch."""
        training = self.spec.training
        return diffusion_loss(
            prediction, target, timesteps, self.components.noise_scheduler, training.snr_gamma
        )

    # ------------------------------------------------------------------ output

    @abstractmethod
    def export(self, state: dict[str, torch.Tensor], out_dir: Path) -> ExportedAdapter:
        """Write diffusers-loadable files from a full state dict of the trained parameters."""


def split_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix.` with the prefix removed."""
    start = prefix + "."
    return {key[len(start) :]: value for key, value in state.items() if key.startswith(start)}
