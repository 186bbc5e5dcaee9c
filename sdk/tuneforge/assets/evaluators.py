"""Tiny random evaluator models for tests and demos: a CLIP and a DINO ViT, built locally.

`build_tiny_clip(path)` writes a transformers `CLIPModel` folder (safetensors, the project's
truncated CLIP BPE tokenizer, an image-processor config at 32 px); `build_tiny_dino(path)` a
`ViTModel` folder shaped like DINO ViT-S/16 at toy widths. They load with `from_pretrained`
offline, exactly as the real `openai/clip-vit-base-patch32` and `facebook/dino-vits16` do, so
the evaluation code paths are the real ones; the figures they give mean nothing.
`cached_tiny_evaluators()` builds both once into the assets cache.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from tuneforge.assets.clip_bpe import BOS_TOKEN, EOS_TOKEN, bpe_dir
from tuneforge.assets.fs import publish_dir, quiet_build, staging_dir
from tuneforge.settings import Settings

TINY_EVALUATORS_VERSION = 1
"""Bumped whenever the builders' output changes (cache keys include it)."""
TINY_EVALUATOR_MARKER = "tuneforge-tiny-evaluator.json"
"""Marker file at the root of a tiny evaluator folder."""
IMAGE_SIZE = 32
PATCH_SIZE = 8
_VISION: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": IMAGE_SIZE,
    "patch_size": PATCH_SIZE,
}
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def build_tiny_clip(
    path: str | os.PathLike[str], seed: int = 0, *, overwrite: bool = False
) -> Path:
    """Write a tiny random `CLIPModel` folder (with tokenizer and processor config) to `path`."""
    target = Path(path)
    with staging_dir(target, overwrite=overwrite) as staging, quiet_build():
        _write_clip(staging, seed)
        publish_dir(staging, target, overwrite=overwrite)
    return target


def build_tiny_dino(
    path: str | os.PathLike[str], seed: int = 0, *, overwrite: bool = False
) -> Path:
    """Write a tiny random DINO-shaped `ViTModel` folder (with processor config) to `path`."""
    target = Path(path)
    with staging_dir(target, overwrite=overwrite) as staging, quiet_build():
        _write_dino(staging, seed)
        publish_dir(staging, target, overwrite=overwrite)
    return target


def cached_tiny_evaluators(seed: int = 0, cache_dir: Path | None = None) -> tuple[Path, Path]:
    """`(clip_dir, dino_dir)` in the assets cache, built on first use (safe when concurrent)."""
    root = cache_dir or Settings().assets_cache_dir()
    made = []
    for kind, builder in (("clip", build_tiny_clip), ("dino", build_tiny_dino)):
        target = root / f"tiny-{kind}-v{TINY_EVALUATORS_VERSION}-seed{seed}"
        if _marker(target) is None:
            try:
                builder(target, seed, overwrite=target.exists())
            except FileExistsError:
                if _marker(target) is None:
                    raise
        made.append(target)
    return made[0], made[1]


def _marker(path: Path) -> dict[str, Any] | None:
    marker = path / TINY_EVALUATOR_MARKER
    if not marker.is_file():
        return None
    info: dict[str, Any] = json.loads(marker.read_text())
    return info if info.get("builder_version") == TINY_EVALUATORS_VERSION else None


def _write_clip(root: Path, seed: int) -> None:
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(bpe_dir()), model_max_length=77)
    text = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.convert_tokens_to_ids(BOS_TOKEN),
        "eos_token_id": tokenizer.convert_tokens_to_ids(EOS_TOKEN),
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = CLIPConfig(text_config=text, vision_config=_VISION, projection_dim=16)
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(str(root), safe_serialization=True)
    tokenizer.save_pretrained(str(root))
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(bpe_dir() / name, root / name)
    _write_processor(root, "CLIPImageProcessor", CLIP_MEAN, CLIP_STD, crop=True)
    _write_marker(root, "tuneforge-tiny-clip", seed)


def _write_dino(root: Path, seed: int) -> None:
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(seed)
    model = ViTModel(ViTConfig(**_VISION), add_pooling_layer=False)
    model.save_pretrained(str(root), safe_serialization=True)
    _write_processor(root, "ViTImageProcessor", IMAGENET_MEAN, IMAGENET_STD, crop=False)
    _write_marker(root, "tuneforge-tiny-dino", seed)


def _write_processor(
    root: Path, kind: str, mean: list[float], std: list[float], *, crop: bool
) -> None:
    """`preprocessor_config.json` as the real models ship it, at the tiny image size."""
    config: dict[str, Any] = {
        "image_processor_type": kind,
        "do_resize": True,
        "do_normalize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "image_mean": mean,
        "image_std": std,
        "resample": 3,
    }
    if crop:
        config |= {
            "size": {"shortest_edge": IMAGE_SIZE},
            "do_center_crop": True,
            "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        }
    else:
        config["size"] = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    (root / "preprocessor_config.json").write_text(json.dumps(config, indent=2) + "\n")


def _write_marker(root: Path, kind: str, seed: int) -> None:
    marker = {
        "kind": kind,
        "builder_version": TINY_EVALUATORS_VERSION,
        "seed": seed,
        "description": (
            "Tiny evaluator with random weights for tests and demos only (its figures mean "
            "nothing). Built by tuneforge.assets.evaluators."
        ),
    }
    (root / TINY_EVALUATOR_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
