"""`tuneforge-adapter.json`: what an adapter is, in typed sections per kind of weights.

The trainer writes it beside the weights; the registry, serving and the CLI read it. Every
model here forbids unknown keys, so a misspelt field is an error, not a silent default.

    {"format_version": 2, "method": "lora", "base_model": "s3://models/sd15",
     "base_model_fingerprint": "…", "files": ["pytorch_lora_weights.safetensors"],
     "lora": {"rank": 16, "alpha": 16.0, "target_modules": ["to_q", …], "text_encoder": false},
     "formats": ["diffusers"], "steps": 800, "job_name": "dogs", "job_uid": "…"}

Version 1 manifests (flat `rank`, `alpha`, `target_modules`, `text_encoder_lora`, `tokens`)
are read and upgraded; they are never written.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tuneforge.contract.names import (
    KOHYA_LORA_WEIGHTS,
    LORA_WEIGHTS,
    TI_EMBEDDINGS,
    AdapterFormat,
)

MANIFEST_FORMAT_VERSION: Final = 2
_V1_ONLY_KEYS = ("rank", "alpha", "target_modules", "text_encoder_lora", "tokens")

AdapterMethod = Literal["lora", "dreambooth", "textualInversion", "pivotal"]
"""The training method that produced an adapter."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraSection(_Strict):
    """The LoRA in `pytorch_lora_weights.safetensors`."""

    rank: int = Field(ge=1)
    """Rank of every LoRA pair (serving checks it against the tensors)."""
    alpha: float = Field(gt=0)
    """Scale numerator: the update is multiplied by alpha / rank."""
    target_modules: list[str] = Field(min_length=1)
    """UNet module name suffixes that carry LoRA layers."""
    text_encoder: bool = False
    """Whether the file also holds LoRA layers for the text encoder."""


class EmbeddingsSection(_Strict):
    """The textual-inversion embeddings in `learned_embeds.safetensors`."""

    tokens: list[str] = Field(min_length=1)
    """Placeholder tokens, in file order (one file entry each, holding its `numVectors` rows)."""


class AdapterManifest(_Strict):
    """What an adapter is and what it was trained from; stored beside the weights."""

    format_version: Literal[2] = MANIFEST_FORMAT_VERSION
    """Version of this manifest's format."""
    method: AdapterMethod
    """`lora`, `dreambooth`, `textualInversion` or `pivotal` (a LoRA and embeddings: both files)."""
    base_model: str
    """URI of the base model the adapter was trained on."""
    base_model_fingerprint: str | None = None
    """Hash of the base model, to refuse an adapter made for another model."""
    files: list[str] = Field(default_factory=list)
    """Weight files (safetensors only)."""
    lora: LoraSection | None = None
    """Set when `files` holds LoRA weights."""
    embeddings: EmbeddingsSection | None = None
    """Set when `files` holds textual-inversion embeddings."""
    formats: list[AdapterFormat] = Field(
        default_factory=lambda: [AdapterFormat.DIFFUSERS], min_length=1
    )
    """Layouts present: `diffusers` always; `kohya` when `files` also holds the kohya copy of the LoRA."""
    full_model: bool = False
    """A full fine-tune (DreamBooth without exportLora): whole UNet / text-encoder weights."""
    steps: int = Field(default=0, ge=0)
    """Optimizer steps trained."""
    job_name: str | None = None
    """FineTuneJob name."""
    job_uid: str | None = None
    """FineTuneJob uid (unique across re-creations of the same name)."""

    @model_validator(mode="before")
    @classmethod
    def _upgrade_v1(cls, data: Any) -> Any:
        if not _is_v1(data):
            return data
        old = dict(data)
        upgraded: dict[str, Any] = {"format_version": MANIFEST_FORMAT_VERSION}
        rank, alpha = old.pop("rank", None), old.pop("alpha", None)
        targets = old.pop("target_modules", None)
        text_encoder = old.pop("text_encoder_lora", False)
        tokens = old.pop("tokens", None)
        old.pop("format_version", None)
        files = old.get("files") or []
        if rank is not None or LORA_WEIGHTS in files:
            upgraded["lora"] = {
                "rank": rank,
                "alpha": alpha if alpha is not None else rank,
                "target_modules": targets,
                "text_encoder": text_encoder,
            }
        if tokens:
            upgraded["embeddings"] = {"tokens": tokens}
        if old.get("method") == "dreambooth" and "lora" not in upgraded and files:
            upgraded["full_model"] = True
        return {**old, **upgraded}

    @model_validator(mode="after")
    def _sections_match_files(self) -> AdapterManifest:
        if (LORA_WEIGHTS in self.files) != (self.lora is not None):
            raise ValueError(
                f"manifest: a 'lora' section goes with {LORA_WEIGHTS} in files, and only then"
            )
        if (TI_EMBEDDINGS in self.files) != (self.embeddings is not None):
            raise ValueError(
                f"manifest: an 'embeddings' section goes with {TI_EMBEDDINGS} in files, "
                "and only then"
            )
        kohya = AdapterFormat.KOHYA in self.formats
        if kohya != (KOHYA_LORA_WEIGHTS in self.files) or (kohya and self.lora is None):
            raise ValueError(
                f"manifest: format 'kohya' goes with {KOHYA_LORA_WEIGHTS} in files and a "
                "'lora' section, and only then"
            )
        if self.method == "pivotal" and (self.lora is None or self.embeddings is None):
            raise ValueError(
                f"manifest: a pivotal adapter holds both {LORA_WEIGHTS} and {TI_EMBEDDINGS} "
                "with their 'lora' and 'embeddings' sections"
            )
        if self.full_model and (self.lora is not None or self.method != "dreambooth"):
            raise ValueError("manifest: full_model is a DreamBooth fine-tune without LoRA")
        return self

    def to_file_text(self) -> str:
        """The text of `tuneforge-adapter.json`.

        `formats` is left out when it is the default (`[diffusers]`): serving releases from
        before `output.formats` refuse unknown keys, and still read such adapters.
        """
        default = self.formats == [AdapterFormat.DIFFUSERS]
        return self.model_dump_json(indent=2, exclude={"formats"} if default else None)


def _is_v1(data: Any) -> bool:
    """Whether `data` is a version 1 manifest: it says so, or says nothing and has v1 keys."""
    if not isinstance(data, dict):
        return False
    if "format_version" in data:
        return bool(data["format_version"] == 1)
    return any(key in data for key in _V1_ONLY_KEYS)
