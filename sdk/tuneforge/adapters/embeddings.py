"""Textual-inversion files (diffusers or A1111 safetensors) -> canonical `learned_embeds`.

The canonical file is what the trainer writes and diffusers' `load_textual_inversion`
reads: `{token: (vectors, dim)}` float32. A diffusers file already is that (a 1-d vector
becomes one row). An A1111 safetensors embedding holds `emb_params` (vectors, dim) and no
token: A1111 uses the file name as the trigger word, so the token is `token` when given,
else the file's stem. Numpy only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from tuneforge.adapters.layouts import (
    A1111_EMBEDDING_KEY,
    A1111_PT_EMBEDDING_PREFIX,
    AdapterFormatError,
    Layout,
)


def read_embeddings(path: Path, layout: Layout, token: str | None) -> dict[str, np.ndarray]:
    """`{token: (vectors, dim) float32}` from an embedding file in `layout`."""
    tensors = load_file(str(path))
    if layout is Layout.A1111_EMBEDDING:
        keys = [A1111_EMBEDDING_KEY] if A1111_EMBEDDING_KEY in tensors else sorted(tensors)
        vectors = [
            tensors[k]
            for k in keys
            if k == A1111_EMBEDDING_KEY or k.startswith(A1111_PT_EMBEDDING_PREFIX)
        ]
        if len(vectors) != 1:
            raise AdapterFormatError(f"{path.name}: expected one embedding tensor, found {keys}")
        return {token or path.stem: _rows(vectors[0], path.name)}
    if token is not None and len(tensors) != 1:
        raise AdapterFormatError(
            f"--token: {path.name} holds {len(tensors)} tokens {sorted(tensors)}; a new token "
            "name can only be given for a file with one"
        )
    if token is not None:
        return {token: _rows(next(iter(tensors.values())), path.name)}
    return {name: _rows(value, path.name) for name, value in tensors.items()}


def _rows(value: np.ndarray, name: str) -> np.ndarray:
    rows = value.reshape(1, -1) if value.ndim == 1 else value
    if rows.ndim != 2 or rows.shape[0] < 1:
        raise AdapterFormatError(
            f"{name}: an embedding of shape {value.shape} is not (vectors, dim)"
        )
    return np.ascontiguousarray(rows.astype(np.float32))


def check_dim(embeddings: dict[str, np.ndarray], dim: int, name: str) -> None:
    """AdapterFormatError unless every vector is `dim` wide (the base's token embedding)."""
    for token, rows in embeddings.items():
        if rows.shape[1] != dim:
            raise AdapterFormatError(
                f"{name}: token {token!r} has {rows.shape[1]}-wide vectors but the base model's "
                f"text encoder embeds {dim}-wide; the embedding was made for another base model"
            )


def write_embeddings(embeddings: dict[str, np.ndarray], path: Path) -> None:
    """Write the canonical `learned_embeds.safetensors`."""
    save_file(embeddings, str(path))
