"""DreamBooth settings (`spec.dreambooth`), with the DreamBooth → LoRA extraction.

`extractLora` turns a full DreamBooth (the whole UNet, optionally the text encoder) into a
LoRA serving can hot-swap: the trainer takes an SVD of each trained weight's change
(trained − base) and keeps `rank` singular directions, or as many as hold `energy` of the
change's squared Frobenius norm. The LoRA is registered next to the full weights as the
registered model `extracted_model_name(output.registeredModel)`.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from tuneforge.api.base import ApiModel

EXTRACTED_LORA_SUFFIX = "-lora"
"""Suffix of the registered model that receives a DreamBooth's extracted LoRA."""
EXTRACTED_NAME_MAX = 128 - len(EXTRACTED_LORA_SUFFIX)
"""Longest `output.registeredModel` with `extractLora` (the suffixed name stays ≤ 128)."""


def extracted_model_name(registered_model: str) -> str:
    """The registered model of the LoRA extracted from `registered_model`'s full DreamBooth."""
    return f"{registered_model}{EXTRACTED_LORA_SUFFIX}"


class ExtractLoraSpec(ApiModel):
    """How a full DreamBooth's LoRA is extracted: set exactly one of `rank` and `energy`."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    rank: int | None = Field(default=None, ge=1, le=256)
    """Keep this many singular directions per layer (at most the layer's smaller dimension); the LoRA has this rank."""
    energy: float | None = Field(default=None, gt=0, le=1)
    """Keep, per layer, the fewest singular directions that hold this fraction of the change's energy (sum of squared singular values, 0 < energy ≤ 1); the LoRA's rank is the largest such count, smaller layers zero-padded."""

    @model_validator(mode="after")
    def _one_of_rank_and_energy(self) -> ExtractLoraSpec:
        if (self.rank is None) == (self.energy is None):
            raise ValueError(
                "spec.dreambooth.extractLora: set exactly one of rank (e.g. rank: 16) and "
                "energy (e.g. energy: 0.9), not " + ("both" if self.rank is not None else "neither")
            )
        return self


class DreamBoothSpec(ApiModel):
    """DreamBooth settings (method `dreambooth`)."""

    prior_preservation: bool = False
    """Add the class prior-preservation loss (needs `dataset.classPrompt`)."""
    prior_loss_weight: float = Field(default=1.0, ge=0, le=100)
    """Weight of the prior-preservation loss."""
    train_text_encoder: bool = False
    """Fine-tune the text encoder too."""
    export_lora: bool = False
    """Train a LoRA DreamBooth-style instead of the full UNet (uses the `lora` section)."""
    extract_lora: ExtractLoraSpec | None = None
    """After a full DreamBooth (no `exportLora`), extract a LoRA from the change of each served attention projection by SVD and register it as `<registeredModel>-lora`, next to the full weights."""
