"""The new-token part shared by the methods that learn embeddings (`textualInversion`, `pivotal`).

The text encoder's token embedding is replaced by `PlaceholderEmbedding`: the original
matrix as a frozen buffer-like parameter plus a small trainable block for the new tokens.
Only the new block has gradients, so every original row stays bit-identical under any
optimizer and any distribution strategy. Saved as `learned_embeds.safetensors`
(`{placeholder: tensor[numVectors, dim]}`), which `pipe.load_textual_inversion` reads;
multi-vector tokens expand as `tok tok_1 … tok_{n-1}`, the convention diffusers uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from tuneforge.api import FineTuneJobSpec, TextualInversionSpec
from tuneforge.contract import TI_EMBEDDINGS, EmbeddingsSection
from tuneforge_trainer.components import Components, load_tokenizer
from tuneforge_trainer.errors import InvalidTrainingInput

VECTORS_PARAM = "placeholder_vectors"
"""Name of the trainable block of new rows (the last segment of its parameter name)."""


def placeholder_tokens(spec: TextualInversionSpec) -> list[str]:
    """The tokens added to the vocabulary: `tok`, `tok_1`, … (diffusers' naming)."""
    token = spec.placeholder_token
    return [token] + [f"{token}_{index}" for index in range(1, spec.num_vectors)]


def initializer_id(tokenizer: Any, token: str) -> int:
    """The single vocabulary id of `token`; raises ValueError if it is not one token."""
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(
            f"textualInversion.initializerToken {token!r} is {len(ids)} tokens, not one: "
            "use a single common word such as 'cat' or 'toy'"
        )
    return int(ids[0])


def token_in_vocabulary(tokenizer: Any, token: str) -> bool:
    """Whether `token` already exists (as a word, a word-end piece or an added token)."""
    vocab = tokenizer.get_vocab()
    return token in vocab or f"{token}</w>" in vocab


def is_vectors_name(name: str) -> bool:
    """Whether a trained parameter's name is the new rows' block."""
    return name == VECTORS_PARAM or name.endswith("." + VECTORS_PARAM)


def check_new_tokens(spec: FineTuneJobSpec, model_dir: Path) -> None:
    """Preflight: the placeholder tokens are new, the initializer is one existing token."""
    ti = spec.textual_inversion
    assert ti is not None  # the spec requires the section for the methods that use this part
    tokenizer = load_tokenizer(model_dir)
    clashes = [token for token in placeholder_tokens(ti) if token_in_vocabulary(tokenizer, token)]
    if clashes:
        raise InvalidTrainingInput(
            f"spec.textualInversion.placeholderToken: {clashes} already in the vocabulary of "
            f"{spec.base_model.uri}; pick a new token such as '<my-concept>'"
        )
    try:
        initializer_id(tokenizer, ti.initializer_token)
    except ValueError as error:
        raise InvalidTrainingInput(f"spec.{error}") from error


class PlaceholderEmbedding(nn.Module):
    """`nn.Embedding` whose original rows are frozen and whose new rows are trainable."""

    def __init__(self, base: nn.Embedding, initial_vectors: torch.Tensor):
        """`initial_vectors` (n × dim) become rows `len(base)` … `len(base) + n - 1`."""
        super().__init__()
        self.base_weight = nn.Parameter(base.weight.detach().clone(), requires_grad=False)
        self.placeholder_vectors = nn.Parameter(initial_vectors.detach().clone())

    @property
    def weight(self) -> torch.Tensor:
        """The full matrix (original rows, then the learned ones)."""
        return torch.cat([self.base_weight, self.placeholder_vectors], dim=0)

    @property
    def num_embeddings(self) -> int:
        """Rows in the full matrix."""
        return int(self.base_weight.shape[0] + self.placeholder_vectors.shape[0])

    @property
    def embedding_dim(self) -> int:
        """Width of each embedding."""
        return int(self.base_weight.shape[1])

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Look up ids in the full matrix."""
        return F.embedding(input_ids, self.weight)


class TokenPart:
    """New placeholder tokens, initialised from an existing token, and their prompts."""

    def __init__(self, ti: TextualInversionSpec, instance_prompt: str | None):
        """`ti`: the tokens; `instance_prompt`: the dataset's prompt for uncaptioned images."""
        self.ti = ti
        self.instance_prompt = instance_prompt

    def prepare(self, components: Components) -> None:
        """Add the tokens and swap in a `PlaceholderEmbedding` initialised from the initializer."""
        tokenizer = components.tokenizer
        text_encoder = components.text_encoder
        init_id = initializer_id(tokenizer, self.ti.initializer_token)
        tokens = placeholder_tokens(self.ti)
        clashes = [token for token in tokens if token_in_vocabulary(tokenizer, token)]
        if clashes:
            raise ValueError(
                f"textualInversion.placeholderToken: {clashes} already in the vocabulary; "
                "pick a new token such as '<my-concept>'"
            )
        base = text_encoder.get_input_embeddings()
        if tokenizer.add_tokens(tokens) != len(tokens):
            raise ValueError(f"textualInversion.placeholderToken: could not add {tokens}")
        ids = tokenizer.convert_tokens_to_ids(tokens)
        expected = list(range(base.weight.shape[0], base.weight.shape[0] + len(tokens)))
        if ids != expected:
            raise ValueError(
                f"tokenizer assigned ids {ids} to {tokens}, expected {expected}: the tokenizer "
                "and the text encoder's embedding disagree in size"
            )
        initial = base.weight[init_id].detach().unsqueeze(0).repeat(len(tokens), 1)
        text_encoder.set_input_embeddings(PlaceholderEmbedding(base, initial))

    def prompt_for(self, caption: str | None) -> str:
        """The caption with the placeholder expanded; `a photo of <token>` when it is absent."""
        token = self.ti.placeholder_token
        text = caption or self.instance_prompt or ""
        if token not in text.split():
            text = f"a photo of {token}"
        return self.expand_prompt(text)

    def evaluation_instance_prompt(self) -> str:
        """The instance prompt when it names the placeholder, else `a photo of <token>` (what
        training used): evaluation prompts without the learned token would show the base."""
        token = self.ti.placeholder_token
        text = self.instance_prompt or ""
        return text if token in text.split() else f"a photo of {token}"

    def expand_prompt(self, prompt: str) -> str:
        """The placeholder replaced by its vectors' tokens (`<t> <t>_1 ...`)."""
        token = self.ti.placeholder_token
        return " ".join(
            " ".join(placeholder_tokens(self.ti)) if word == token else word
            for word in prompt.split()
        )

    def export(self, state: dict[str, torch.Tensor], out_dir: Path) -> EmbeddingsSection:
        """Write `learned_embeds.safetensors` (`{placeholder: vectors}`) from a full state dict."""
        vectors = next(value for key, value in state.items() if is_vectors_name(key))
        out_dir.mkdir(parents=True, exist_ok=True)
        save_file(
            {self.ti.placeholder_token: vectors.detach().to(torch.float32).contiguous()},
            str(out_dir / TI_EMBEDDINGS),
        )
        return EmbeddingsSection(tokens=[self.ti.placeholder_token])
