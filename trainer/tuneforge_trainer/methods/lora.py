"""LoRA on the UNet's attention projections (and optionally the text encoder's), via peft.

The layers, their export and their preflight are the shared `LoraPart`.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import torch

from tuneforge.api import FineTuneJobSpec, LoraSpec, Method
from tuneforge.contract import LORA_WEIGHTS
from tuneforge_trainer.methods.base import ExportedAdapter, TrainingMethod
from tuneforge_trainer.methods.lora_part import LoraPart, check_lora_targets


class LoraMethod(TrainingMethod):
    """Low-rank adapters; the base weights stay frozen."""

    method = Method.LORA

    @property
    def lora(self) -> LoraSpec:
        """The LoRA settings in force (defaults when the spec leaves them out)."""
        return self.spec.lora or LoraSpec()

    @cached_property
    def part(self) -> LoraPart:
        """The LoRA layers this method trains."""
        return LoraPart(self.lora, text_encoder=self.lora.train_text_encoder)

    @classmethod
    def preflight(cls, spec: FineTuneJobSpec, model_dir: Path) -> None:
        """The target modules exist in the UNet."""
        check_lora_targets(spec.lora or LoraSpec(), model_dir)

    @property
    def trains_text_encoder(self) -> bool:
        """Text-encoder LoRA when `lora.trainTextEncoder` is set."""
        return self.part.text_encoder

    def prepare(self) -> None:
        """Add the `default` LoRA adapter to the UNet (and the text encoder)."""
        self.part.prepare(self.components)

    def export(self, state: dict[str, torch.Tensor], out_dir: Path) -> ExportedAdapter:
        """`pytorch_lora_weights.safetensors` in the diffusers LoRA format."""
        section = self.part.export(self.components, state, out_dir)
        return ExportedAdapter(files=[LORA_WEIGHTS], lora=section)
