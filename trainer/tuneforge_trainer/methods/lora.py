"""LoRA on the UNet's attention projections (and optionally the text encoder's), via peft.

Saved with `save_lora_weights(..., unet_lora_adapter_metadata=...)`, so `pipe.load_lora_weights`
reads it and an alpha different from the rank survives the reload.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tuneforge.adapter import LORA_WEIGHTS
from tuneforge.api import LoraSpec, Method
from tuneforge_trainer.methods.base import ExportedAdapter, TrainingMethod, split_prefix

TEXT_ENCODER_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


def lora_config(lora: LoraSpec, targets: list[str] | tuple[str, ...]) -> Any:
    """A peft `LoraConfig` (Gaussian init, as the diffusers LoRA scripts use)."""
    from peft import LoraConfig

    return LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        init_lora_weights="gaussian",
        target_modules=list(targets),
    )


def save_lora_files(
    out_dir: Path,
    unet: Any,
    text_encoder: Any | None,
    state: dict[str, torch.Tensor],
) -> None:
    """Write `pytorch_lora_weights.safetensors` from a full state dict of a `Denoiser`."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    unet_layers = convert_state_dict_to_diffusers(
        get_peft_model_state_dict(unet, state_dict=split_prefix(state, "unet"))
    )
    text_layers = None
    text_metadata = None
    if text_encoder is not None:
        text_layers = convert_state_dict_to_diffusers(
            get_peft_model_state_dict(text_encoder, state_dict=split_prefix(state, "text_encoder"))
        )
        text_metadata = text_encoder.peft_config["default"].to_dict()
    StableDiffusionPipeline.save_lora_weights(
        str(out_dir),
        unet_lora_layers={k: v.contiguous() for k, v in unet_layers.items()},
        text_encoder_lora_layers=(
            {k: v.contiguous() for k, v in text_layers.items()} if text_layers else None
        ),
        unet_lora_adapter_metadata=unet.peft_config["default"].to_dict(),
        text_encoder_lora_adapter_metadata=text_metadata,
        weight_name=LORA_WEIGHTS,
    )


class LoraMethod(TrainingMethod):
    """Low-rank adapters; the base weights stay frozen."""

    manifest_method = Method.LORA.value

    @property
    def lora(self) -> LoraSpec:
        """The LoRA settings in force (defaults when the spec leaves them out)."""
        lora = self.spec.effective_lora()
        return lora if lora is not None else LoraSpec()

    @property
    def trains_text_encoder(self) -> bool:
        """Text-encoder LoRA when `lora.trainTextEncoder` is set."""
        return self.lora.train_text_encoder

    def prepare(self) -> None:
        """Add the `default` LoRA adapter to the UNet (and the text encoder)."""
        self.components.unet.add_adapter(lora_config(self.lora, self.lora.target_modules))
        if self.trains_text_encoder:
            self.components.text_encoder.add_adapter(
                lora_config(self.lora, TEXT_ENCODER_LORA_TARGETS)
            )

    def export(self, state: dict[str, torch.Tensor], out_dir: Path) -> ExportedAdapter:
        """`pytorch_lora_weights.safetensors` in the diffusers LoRA format."""
        save_lora_files(
            out_dir,
            self.components.unet,
            self.components.text_encoder if self.trains_text_encoder else None,
            state,
        )
        return ExportedAdapter(
            files=[LORA_WEIGHTS],
            manifest_fields={
                "rank": self.lora.rank,
                "alpha": self.lora.alpha,
                "target_modules": list(self.lora.target_modules),
                "text_encoder_lora": self.trains_text_encoder,
            },
        )
