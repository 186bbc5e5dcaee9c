"""Tiny assets built locally for tests, benchmarks and the demo (no hub is reachable).

- `build_tiny_model(path, seed=0)`: a tiny SD-1.5-shaped diffusers pipeline folder with
  random weights that `StableDiffusionPipeline.from_pretrained(path)` loads offline.
- `build_tiny_dataset(path, resolution=64, ...)`: a small synthetic subject set ("sks toy")
  with captions, plus class images for prior preservation.

Nothing here imports torch, diffusers or transformers until a builder is called.
See docs/assets.md.
"""

from __future__ import annotations

from tuneforge.assets.clip_bpe import MODEL_MAX_LENGTH, VOCAB_SIZE, bpe_dir
from tuneforge.assets.tiny_dataset import (
    CLASS_DIR,
    CLASS_PROMPT,
    INSTANCE_DIR,
    INSTANCE_PROMPT,
    INSTANCE_TOKEN,
    TINY_DATASET_MARKER,
    TINY_DATASET_VERSION,
    build_tiny_dataset,
    tiny_dataset_info,
)
from tuneforge.assets.tiny_model import (
    TINY_MODEL_MARKER,
    TINY_MODEL_RESOLUTION,
    TINY_MODEL_VERSION,
    build_tiny_model,
    load_tiny_tokenizer,
    tiny_model_info,
)

__all__ = [
    "CLASS_DIR",
    "CLASS_PROMPT",
    "INSTANCE_DIR",
    "INSTANCE_PROMPT",
    "INSTANCE_TOKEN",
    "MODEL_MAX_LENGTH",
    "TINY_DATASET_MARKER",
    "TINY_DATASET_VERSION",
    "TINY_MODEL_MARKER",
    "TINY_MODEL_RESOLUTION",
    "TINY_MODEL_VERSION",
    "VOCAB_SIZE",
    "bpe_dir",
    "build_tiny_dataset",
    "build_tiny_model",
    "load_tiny_tokenizer",
    "tiny_dataset_info",
    "tiny_model_info",
]
