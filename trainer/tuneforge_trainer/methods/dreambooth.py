"""DreamBooth: fine-tune the full UNet (or, with `exportLora`, a LoRA) on the subject, with the
class prior-preservation loss of Ruiz et al. 2022. With `extractLora` the final export also
extracts a LoRA from the full fine-tune (`tuneforge_trainer.extract_lora`).

Each batch holds the instance examples followed by as many class examples; the loss is
`instance + priorLossWeight * prior`. The full variant writes the UNet (and text-encoder)
weights and trains the full model; the LoRA variant is the shared `LoraPart`.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import torch
from safetensors.torch import save_file

from tuneforge.api import DreamBoothSpec, ExtractLoraSpec, FineTuneJobSpec, Method
from tuneforge.contract import LORA_WEIGHTS
from tuneforge_trainer.losses import diffusion_loss
from tuneforge_trainer.methods.base import ExportedAdapter, TrainingMethod, split_prefix
from tuneforge_trainer.methods.lora_part import LoraPart, check_lora_targets

UNET_WEIGHTS = "unet.safetensors"
TEXT_ENCODER_WEIGHTS = "text_encoder.safetensors"


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().contiguous() for name, tensor in state.items()}


class DreamBoothMethod(TrainingMethod):
    """Full-UNet DreamBooth, or LoRA DreamBooth when `dreambooth.exportLora` is set."""

    method = Method.DREAMBOOTH

    @property
    def dreambooth(self) -> DreamBoothSpec:
        """The DreamBooth settings (defaults when unset)."""
        return self.spec.dreambooth or DreamBoothSpec()

    @cached_property
    def part(self) -> LoraPart | None:
        """The LoRA layers trained with exportLora; None for a full fine-tune."""
        lora = self.spec.effective_lora()
        if lora is None:
            return None
        text_encoder = self.dreambooth.train_text_encoder or lora.train_text_encoder
        return LoraPart(lora, text_encoder=text_encoder)

    @classmethod
    def preflight(cls, spec: FineTuneJobSpec, model_dir: Path) -> None:
        """With exportLora: the LoRA target modules exist in the UNet."""
        lora = spec.effective_lora()
        if lora is not None:
            check_lora_targets(lora, model_dir)

    @property
    def trains_text_encoder(self) -> bool:
        """`dreambooth.trainTextEncoder` (or `lora.trainTextEncoder` with exportLora)."""
        if self.part is not None:
            return self.part.text_encoder
        return self.dreambooth.train_text_encoder

    @property
    def trains_full_model(self) -> bool:
        """Without exportLora the whole UNet trains."""
        return self.part is None

    @property
    def extract_lora(self) -> ExtractLoraSpec | None:
        """`dreambooth.extractLora` of a full DreamBooth (the spec refuses it with exportLora)."""
        return self.dreambooth.extract_lora if self.part is None else None

    @property
    def uses_prior_preservation(self) -> bool:
        """`dreambooth.priorPreservation`."""
        return self.dreambooth.prior_preservation

    def prepare(self) -> None:
        """Unfreeze the UNet (and text encoder), or add LoRA layers for exportLora."""
        components = self.components
        if self.part is not None:
            self.part.prepare(components)
            return
        components.unet.requires_grad_(True)
        components.unet.train()
        if self.trains_text_encoder:
            components.text_encoder.requires_grad_(True)
            components.text_encoder.train()

    def loss(
        self, prediction: torch.Tensor, target: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        """Instance loss plus the weighted prior loss on the second half of the batch."""
        if not self.uses_prior_preservation:
            return super().loss(prediction, target, timesteps)
        scheduler = self.components.noise_scheduler
        gamma = self.spec.training.snr_gamma
        pred_instance, pred_prior = prediction.chunk(2)
        target_instance, target_prior = target.chunk(2)
        t_instance, t_prior = timesteps.chunk(2)
        instance = diffusion_loss(pred_instance, target_instance, t_instance, scheduler, gamma)
        prior = diffusion_loss(pred_prior, target_prior, t_prior, scheduler, gamma)
        return instance + self.dreambooth.prior_loss_weight * prior

    def export(self, state: dict[str, torch.Tensor], out_dir: Path) -> ExportedAdapter:
        """A LoRA file (exportLora) or the fine-tuned UNet (and text encoder) weights."""
        if self.part is not None:
            section = self.part.export(self.components, state, out_dir)
            return ExportedAdapter(files=[LORA_WEIGHTS], lora=section)
        files = [UNET_WEIGHTS]
        out_dir.mkdir(parents=True, exist_ok=True)
        save_file(_contiguous(split_prefix(state, "unet")), str(out_dir / UNET_WEIGHTS))
        if self.trains_text_encoder:
            save_file(
                _contiguous(split_prefix(state, "text_encoder")),
                str(out_dir / TEXT_ENCODER_WEIGHTS),
            )
            files.append(TEXT_ENCODER_WEIGHTS)
        return ExportedAdapter(files=files, full_model=True)
