"""The DreamBooth paper's metrics as plain tensor math on embeddings.

- subject fidelity (DINO, CLIP-I): the mean cosine similarity over every pair of one
  generated and one real subject image;
- prompt fidelity (CLIP-T): the mean cosine similarity between each generated image and the
  prompt it was generated from.

Identical embeddings give 1.0, opposite ones -1.0, orthogonal ones 0.0.
"""

from __future__ import annotations

import torch


def _unit(embeddings: torch.Tensor, what: str) -> torch.Tensor:
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise ValueError(
            f"{what}: expected a non-empty (count, dim) tensor, got {tuple(embeddings.shape)}"
        )
    norms = embeddings.float().norm(dim=-1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError(f"{what}: an embedding is all zeros; its cosine similarity is undefined")
    return embeddings.float() / norms


def subject_fidelity(generated: torch.Tensor, real: torch.Tensor) -> float:
    """Mean pairwise cosine similarity between generated and real image embeddings (DINO, CLIP-I)."""
    if generated.shape[-1] != real.shape[-1]:
        raise ValueError(
            f"embedding sizes differ: generated {generated.shape[-1]}, real {real.shape[-1]}"
        )
    similarity = _unit(generated, "generated images") @ _unit(real, "real images").T
    return float(similarity.mean())


def prompt_fidelity(images: torch.Tensor, texts: torch.Tensor) -> float:
    """Mean cosine similarity between each image embedding and its own prompt's (CLIP-T).

    Row i of `texts` is the prompt that row i of `images` was generated from.
    """
    if images.shape != texts.shape:
        raise ValueError(
            f"CLIP-T pairs each image with its prompt: got {tuple(images.shape)} images and "
            f"{tuple(texts.shape)} texts"
        )
    pairs = _unit(images, "images") * _unit(texts, "prompts")
    return float(pairs.sum(dim=-1).mean())
