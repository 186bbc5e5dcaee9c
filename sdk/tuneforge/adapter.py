"""The adapter contract between trainer and serving (`tuneforge-adapter.json`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

ADAPTER_MANIFEST = "tuneforge-adapter.json"
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
TI_EMBEDDINGS = "learned_embeds.safetensors"


class AdapterManifest(BaseModel):
    """What an adapter is and what it was trained from; stored beside the weights."""

    model_config = ConfigDict(alias_generator=None, extra="ignore")

    format_version: int = 1
    """Version of this manifest's format."""
    method: str
    """`lora`, `dreambooth` (with exportLora) or `textualInversion`."""
    base_model: str
    """URI of the base model the adapter was trained on."""
    base_model_fingerprint: str | None = None
    """Hash of the base model's config files, to refuse an adapter made for another model."""
    files: list[str] = Field(default_factory=list)
    """Weight files (safetensors only)."""
    rank: int | None = None
    """LoRA rank."""
    alpha: float | None = None
    """LoRA alpha."""
    target_modules: list[str] = Field(default_factory=list)
    """UNet modules with LoRA layers."""
    text_encoder_lora: bool = False
    """Whether the LoRA also covers the text encoder."""
    tokens: list[str] = Field(default_factory=list)
    """Textual-inversion placeholder tokens."""
    steps: int = 0
    """Optimizer steps trained."""
    job_name: str | None = None
    """FineTuneJob name."""
    job_uid: str | None = None
    """FineTuneJob uid (unique across re-creations of the same name)."""
