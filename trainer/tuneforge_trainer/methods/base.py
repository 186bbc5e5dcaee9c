"""What every fine-tuning method provides to the shared training loop.

A method prepares the frozen base components (injects LoRA layers, adds placeholder tokens,
unfreezes the UNet), names the parameters it trains, builds prompts from captions, and
exports a full (gathered) state dict as diffusers-loadable files. The loop, the data, the
distribution strategy and the checkpoints are the same for all methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tuneforge.api import FineTuneJobSpec
from tuneforge_trainer.components import Components, Denoiser
from tuneforge_trainer.losses import diffusion_loss


@dataclass
class ExportedAdapter:
    """Files written by `TrainingMethod.export` and the manifest fields they imply."""

    files: list[str]
    manifest_fields: dict[str, Any] = field(default_factory=dict)


class TrainingMethod(ABC):
    """Base of LoRA, DreamBooth and Textual Inversion."""

    #: `AdapterManifest.method` value.
    manifest_method: str = ""
    #: AdamW weight decay.
    weight_decay: float = 1e-2

    def __init__(self, spec: FineTuneJobSpec, components: Components):
        """Keep the spec and the (still frozen) components."""
        self.spec = spec
        self.components = components

    # ------------------------------------------------------------------ set-up

    @abstractmethod
    def prepare(self) -> None:
        """Inject adapters / unfreeze parameters; called once, with the same seed on every rank."""

    @property
    def trains_text_encoder(self) -> bool:
        """Whether gradients flow through the text encoder."""
        return False

    def denoiser(self) -> Denoiser:
        """The module a strategy wraps (text encoder + UNet)."""
        denoiser = Denoiser(self.components.text_encoder, self.components.unet)
        if not self.trains_text_encoder:
            denoiser.text_encoder.eval()
        return denoiser

    def trainable_names(self, denoiser: Denoiser) -> list[str]:
        """Names (in `denoiser`) of the parameters this method trains."""
        return [name for name, param in denoiser.named_parameters() if param.requires_grad]

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
