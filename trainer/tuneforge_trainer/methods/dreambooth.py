"""DreamBooth: fine-tune the full UNet (or, with `exportLora`, a LoRA) on the subject, with the
class prior-preservation loss of Ruiz et al. 2022.

Each batch holds the instance examples followed by as many class examples; the loss is
`instance + priorLossWeight * prior`. The full variant writes diffusers `unet/` (and
`text_encoder/`) folders; the LoRA variant writes the diffusers LoRA file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from tuneforge.adapter import LORA_WEIGHTS
from tuneforge.api import DreamBoothSpec, Method
from tuneforge_trainer.losses import diffusion_loss
from tuneforge_trainer.methods.base import ExportedAdapter, TrainingMethod, split_prefix
from tuneforge_trainer.methods.lora import (
    TEXT_ENCODER_LORA_TARGETS,
    LoraMethod,
    lora_config,
    save_lora_files,
)

UNET_WEIGHTS = "unet.safetensors"
TEXT_ENCODER_WEIGHTS = "text_encoder.safetensors"


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().contiguous() for name, tensor in state.items()}


class DreamBoothMethod(TrainingMethod):
    """Full-UNet DreamBooth, or LoRA DreamBooth when `dreambooth.exportLora` is set."""

    manifest_method = Method.DREAMBOOTH.value

    @property
    def dreambooth(self) -> DreamBoothSpec:
        """The DreamBooth settings (defaults when unset)."""
        return self.spec.dreambooth or DreamBoothSpec()

    @property
    def export_lora(self) -> bool:
        """Whether a LoRA is trained instead of the full UNet."""
        return self.dreambooth.export_lora

    @property
    def trains_text_encoder(self) -> bool:
        """`dreambooth.trainTextEncoder` (or `lora.trainTextEncoder` with exportLora)."""
        lora = self.spec.effective_lora()
        return self.dreambooth.train_text_encoder or bool(
            self.export_lora and lora is not None and lora.train_text_encoder
        )

    @property
    def uses_prior_preservation(self) -> bool:
        """`dreambooth.priorPreservation`."""
        return self.dreambooth.prior_preservation

    def prepare(self) -> None:
        """Unfreeze the UNet (and text encoder), or add LoRA layers for exportLora."""
        components = self.components
        if self.export_lora:
            lora = self.spec.effective_lora()
            assert lora is not None
            components.unet.add_adapter(lora_config(lora, lora.target_modules))
            if self.trains_text_encoder:
                components.text_encoder.add_adapter(lora_config(lora, TEXT_ENCODER_LORA_TARGETS))
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
        components = self.components
        if self.export_lora:
            save_lora_files(
                out_dir,
                components.unet,
                components.text_encoder if self.trains_text_encoder else None,
                state,
            )
            lora = self.spec.effective_lora()
            assert lora is not None
            return ExportedAdapter(
                files=[LORA_WEIGHTS],
                manifest_fields={
                    "rank": lora.rank,
                    "alpha": lora.alpha,
                    "target_modules": list(lora.target_modules),
                    "text_encoder_lora": self.trains_text_encoder,
                },
            )
        files = [UNET_WEIGHTS]
        out_dir.mkdir(parents=True, exist_ok=True)
        save_file(_contiguous(split_prefix(state, "unet")), str(out_dir / UNET_WEIGHTS))
        if self.trains_text_encoder:
            save_file(
                _contiguous(split_prefix(state, "text_encoder")),
                str(out_dir / TEXT_ENCODER_WEIGHTS),
            )
            files.append(TEXT_ENCODER_WEIGHTS)
        return ExportedAdapter(files=files)


__all__ = ["DreamBoothMethod", "LoraMethod"]
