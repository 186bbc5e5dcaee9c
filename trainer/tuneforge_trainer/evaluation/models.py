"""The evaluator models (CLIP, DINO ViT) on the worker's device, and their embeddings.

Models are named by URI (`hf://org/name`, `s3://bucket/prefix`, a local folder) and loaded
from safetensors only, with their own image-processor configs. The image processors are the
PIL ones (`CLIPImageProcessorPil`, `ViTImageProcessorPil`): they need no torchvision, which
the trainer image does not ship.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tuneforge.api import EvalMetric, EvaluationSpec
from tuneforge.inputs import materialize
from tuneforge.settings import Settings

HF_SCHEME = "hf://"
HF_PATTERNS = ["*.json", "*.safetensors", "*.txt"]
"""What is fetched of an `hf://` evaluator: configs, safetensors weights, BPE merges."""


def resolve_evaluator(uri: str, cache_dir: Path, settings: Settings) -> Path:
    """A local folder holding the model `uri` names (`hf://` and `s3://` are downloaded once)."""
    if uri.startswith(HF_SCHEME):
        from tuneforge.hub_download import download_hub_snapshot

        # Within the download caps, like every base model and s3:// download.
        return download_hub_snapshot(
            uri.removeprefix(HF_SCHEME),
            revision=None,
            allow_patterns=HF_PATTERNS,
            cache_dir=cache_dir / "hf",
            settings=settings,
        )
    path = materialize(uri, cache_dir, settings)
    if not path.is_dir():
        raise FileNotFoundError(
            f"evaluator model {uri!r} is not a folder here ({path}): give a transformers "
            "model folder (config.json, model.safetensors, preprocessor_config.json)"
        )
    return path


def _features(output: Any) -> torch.Tensor:
    """Projected features: transformers 5 returns them as `pooler_output`, 4 as a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@dataclass
class Evaluators:
    """Loaded evaluator models; each `*_embeddings` call runs on `device` without gradients."""

    device: torch.device
    clip: Any = None
    clip_processor: Any = None
    clip_tokenizer: Any = None
    dino: Any = None
    dino_processor: Any = None

    @torch.no_grad()
    def dino_embeddings(self, images: list[Any]) -> torch.Tensor:
        """DINO's class-token embedding of each PIL image (the paper's DINO metric)."""
        pixels = self.dino_processor(images=images, return_tensors="pt")["pixel_values"]
        hidden = self.dino(pixel_values=pixels.to(self.device)).last_hidden_state
        return hidden[:, 0].float().cpu()

    @torch.no_grad()
    def clip_image_embeddings(self, images: list[Any]) -> torch.Tensor:
        """CLIP's projected image embedding of each PIL image."""
        pixels = self.clip_processor(images=images, return_tensors="pt")["pixel_values"]
        return (
            _features(self.clip.get_image_features(pixel_values=pixels.to(self.device)))
            .float()
            .cpu()
        )

    @torch.no_grad()
    def clip_text_embeddings(self, prompts: list[str]) -> torch.Tensor:
        """CLIP's projected text embedding of each prompt (truncated to its positions)."""
        positions = self.clip.config.text_config.max_position_embeddings
        tokens = self.clip_tokenizer(
            prompts,
            padding="max_length",
            truncation=True,
            max_length=positions,
            return_tensors="pt",
        )
        output = self.clip.get_text_features(
            input_ids=tokens.input_ids.to(self.device),
            attention_mask=tokens.attention_mask.to(self.device),
        )
        return _features(output).float().cpu()


def load_evaluators(
    spec: EvaluationSpec, cache_dir: Path, settings: Settings, device: torch.device
) -> Evaluators:
    """Load the models `spec.metrics` need (CLIP for clipI/clipT, DINO for dino) on `device`."""
    from transformers import (
        CLIPImageProcessorPil,
        CLIPModel,
        CLIPTokenizer,
        ViTImageProcessorPil,
        ViTModel,
    )

    loaded = Evaluators(device=device)
    if EvalMetric.CLIP_I in spec.metrics or EvalMetric.CLIP_T in spec.metrics:
        folder = resolve_evaluator(spec.clip_model, cache_dir, settings)
        loaded.clip = CLIPModel.from_pretrained(str(folder), use_safetensors=True).to(device).eval()
        loaded.clip_processor = CLIPImageProcessorPil.from_pretrained(str(folder))
        loaded.clip_tokenizer = CLIPTokenizer.from_pretrained(str(folder))
    if EvalMetric.DINO in spec.metrics:
        folder = resolve_evaluator(spec.dino_model, cache_dir, settings)
        dino = ViTModel.from_pretrained(str(folder), use_safetensors=True, add_pooling_layer=False)
        loaded.dino = dino.to(device).eval()
        loaded.dino_processor = ViTImageProcessorPil.from_pretrained(str(folder))
    return loaded
