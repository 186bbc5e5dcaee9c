"""The LoRA part shared by the methods that train a LoRA (`lora`, DreamBooth with exportLora).

`LoraPart` adds the peft layers (UNet, optionally the text encoder), writes
`pytorch_lora_weights.safetensors` with `save_lora_weights(..., unet_lora_adapter_metadata=...)`
(so `pipe.load_lora_weights` reads it and an alpha different from the rank survives the
reload), describes it as the manifest's `LoraSection`, and checks the target modules before
training (preflight).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tuneforge.api import LoraSpec
from tuneforge.contract import LORA_WEIGHTS, LoraSection
from tuneforge_trainer.components import Components, unet_module_names
from tuneforge_trainer.errors import InvalidTrainingInput
from tuneforge_trainer.methods.base import split_prefix

TEXT_ENCODER_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


def lora_config(lora: LoraSpec, targets: list[str] | tuple[str, ...]) -> Any:
    """A peft `LoraConfig` (Gaussian init, as the diffusers LoRA scripts use)."""
    from peft import LoraConfig

    return LoraConfig(
        r=lora.rank,
        lora_alpha=lora.resolved_alpha,
        lora_dropout=lora.dropout,
        init_lora_weights="gaussian",
        target_modules=list(targets),
    )


def check_lora_targets(lora: LoraSpec, model_dir: Path) -> None:
    """Every `lora.targetModules` entry names at least one Linear/Conv layer of the UNet."""
    modules = unet_module_names(model_dir)
    layers = {name: kind for name, kind in modules.items() if kind in {"Linear", "Conv2d"}}
    unknown = [
        target
        for target in lora.target_modules
        if not any(name == target or name.endswith("." + target) for name in layers)
    ]
    if unknown:
        known = sorted({name.rsplit(".", 1)[-1] for name in layers if ".attn" in name})
        raise InvalidTrainingInput(
            f"spec.lora.targetModules: {unknown} match no Linear or Conv2d layer of the UNet; "
            f"attention layers are named {known} (also 'to_out.0', 'proj_in', 'ff.net.2', ...)"
        )


class LoraPart:
    """LoRA layers on the UNet (and the text encoder when `text_encoder` is set)."""

    def __init__(self, lora: LoraSpec, text_encoder: bool):
        """`lora`: the settings in force; `text_encoder`: also train text-encoder LoRA."""
        self.lora = lora
        self.text_encoder = text_encoder

    def prepare(self, components: Components) -> None:
        """Add the `default` LoRA adapter to the UNet (and the text encoder)."""
        components.unet.add_adapter(lora_config(self.lora, self.lora.target_modules))
        if self.text_encoder:
            components.text_encoder.add_adapter(lora_config(self.lora, TEXT_ENCODER_LORA_TARGETS))

    def export(
        self, components: Components, state: dict[str, torch.Tensor], out_dir: Path
    ) -> LoraSection:
        """Write `pytorch_lora_weights.safetensors` from a full state dict of a `Denoiser`."""
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        unet = components.unet
        unet_layers = convert_state_dict_to_diffusers(
            get_peft_model_state_dict(unet, state_dict=split_prefix(state, "unet"))
        )
        text_layers = None
        text_metadata = None
        if self.text_encoder:
            text_encoder = components.text_encoder
            text_layers = convert_state_dict_to_diffusers(
                get_peft_model_state_dict(
                    text_encoder, state_dict=split_prefix(state, "text_encoder")
                )
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
        return self.section()

    def section(self) -> LoraSection:
        """The manifest's description of the written file."""
        return LoraSection(
            rank=self.lora.rank,
            alpha=self.lora.resolved_alpha,
            target_modules=list(self.lora.target_modules),
            text_encoder=self.text_encoder,
        )
