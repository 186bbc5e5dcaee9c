"""Pre-allocated textual-inversion slots: reserved tokens whose embedding rows are rewritten.

At start-up the tokenizer gets `n_slots * vectors_per_slot` reserved tokens
(`<tf-ti-S-V>`) and the text encoder's embedding matrix grows once to hold them (rows
zero). Attaching a textual-inversion adapter to slot S writes its vectors into that slot's
rows; a request's prompt has each of its adapters' tokens rewritten to the slot tokens
(`<cat-toy>` -> `<tf-ti-2-0> <tf-ti-2-1>` for two vectors), as diffusers'
`maybe_convert_prompt` does for multi-vector tokens. The user's tokens never enter the
tokenizer, so a prompt naming a concept whose adapter is not requested (or was evicted)
is tokenized as plain text, exactly as by the base model; evicted rows are zeroed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from tuneforge_serving.errors import AdapterRejected


@dataclass
class StagedEmbeddings:
    """A textual-inversion adapter in host memory: token -> (vectors, dim)."""

    vectors: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_vectors(self) -> int:
        return sum(int(t.shape[0]) for t in self.vectors.values())

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.vectors.values())


def reserved_token(slot: int, vector: int) -> str:
    """The reserved tokenizer token for vector `vector` of slot `slot`."""
    return f"<tf-ti-{slot}-{vector}>"


class EmbeddingSlotBank:
    """Reserved token rows in the text encoder's input embeddings, `vectors_per_slot` per slot."""

    def __init__(
        self, tokenizer: object, text_encoder: torch.nn.Module, n_slots: int, vectors_per_slot: int
    ) -> None:
        self.n_slots = n_slots
        self.vectors_per_slot = vectors_per_slot
        self.tokenizer = tokenizer
        tokens = [reserved_token(s, v) for s in range(n_slots) for v in range(vectors_per_slot)]
        added = tokenizer.add_tokens(tokens)  # type: ignore[attr-defined]
        if added != len(tokens):
            raise RuntimeError("the tokenizer already holds TuneForge's reserved slot tokens")
        text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)  # type: ignore[arg-type,operator]
        self.embeddings: torch.nn.Embedding = text_encoder.get_input_embeddings()  # type: ignore[operator]
        ids = tokenizer.convert_tokens_to_ids(tokens)  # type: ignore[attr-defined]
        self._row_ids = torch.tensor(ids, dtype=torch.long).view(n_slots, vectors_per_slot)
        self.dim = int(self.embeddings.weight.shape[1])
        self._mapping: list[dict[str, str]] = [{} for _ in range(n_slots)]
        with torch.no_grad():
            self.embeddings.weight[self._row_ids.flatten()] = 0.0

    def check(self, staged: StagedEmbeddings, name: str) -> None:
        """Raise AdapterRejected (422) unless `staged` fits one slot of this text encoder."""
        if staged.num_vectors > self.vectors_per_slot:
            raise AdapterRejected(
                f"adapter {name}: {staged.num_vectors} textual-inversion vectors exceed "
                f"hotswap.maxTiVectors={self.vectors_per_slot}"
            )
        for token, vectors in staged.vectors.items():
            if vectors.ndim != 2 or vectors.shape[1] != self.dim:
                raise AdapterRejected(
                    f"adapter {name}: embedding for {token!r} has shape {tuple(vectors.shape)}; "
                    f"this text encoder needs (n, {self.dim})"
                )

    @torch.no_grad()
    def write(self, slot: int, staged: StagedEmbeddings) -> None:
        """Write `staged` into the rows of `slot`; unused rows of the slot become zero."""
        weight = self.embeddings.weight
        rows = self._row_ids[slot]
        weight[rows] = 0.0
        mapping: dict[str, str] = {}
        offset = 0
        for token, vectors in staged.vectors.items():
            count = int(vectors.shape[0])
            weight[rows[offset : offset + count]] = vectors.to(weight.device, weight.dtype)
            mapping[token] = " ".join(reserved_token(slot, offset + i) for i in range(count))
            offset += count
        self._mapping[slot] = mapping

    @torch.no_grad()
    def clear(self, slot: int) -> None:
        """Zero `slot`'s rows and forget its tokens."""
        self.embeddings.weight[self._row_ids[slot]] = 0.0
        self._mapping[slot] = {}

    def rewrite(self, prompt: str, slots: list[int]) -> str:
        """`prompt` with the tokens of the adapters in `slots` replaced by their slot tokens."""
        mapping: dict[str, str] = {}
        for slot in slots:
            mapping.update(self._mapping[slot])
        if not mapping:
            return prompt
        pattern = re.compile("|".join(re.escape(t) for t in sorted(mapping, key=len, reverse=True)))
        return pattern.sub(lambda match: mapping[match.group(0)], prompt)
