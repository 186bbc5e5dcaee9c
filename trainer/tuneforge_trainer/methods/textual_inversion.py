"""Textual Inversion: learn `numVectors` new token embeddings, nothing else.

The tokens, their trainable rows, their prompts and `learned_embeds.safetensors` are the
shared `TokenPart` (`methods.token_part`), which pivotal tuning also uses.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from tuneforge.api import FineTuneJobSpec, Method, TextualInversionSpec
from tuneforge.contract import TI_EMBEDDINGS
from tuneforge_trainer.methods.base import ExportedAdapter, TrainingMethod
from tuneforge_trainer.methods.token_part import TokenPart, check_new_tokens


class TextualInversionMethod(TrainingMethod):
    """New placeholder tokens initialised from an existing token."""

    method = Method.TEXTUAL_INVERSION
    weight_decay = 0.0
    captions_required = False

    @classmethod
    def preflight(cls, spec: FineTuneJobSpec, model_dir: Path) -> None:
        """Placeholder tokens are new; the initializer is one existing token."""
        check_new_tokens(spec, model_dir)

    @property
    def ti(self) -> TextualInversionSpec:
        """The textual-inversion settings (required by the spec for this method)."""
        assert self.spec.textual_inversion is not None
        return self.spec.textual_inversion

    @cached_property
    def tokens(self) -> TokenPart:
        """The new tokens this method trains."""
        return TokenPart(self.ti, self.spec.dataset.instance_prompt)

    @property
    def trains_text_encoder(self) -> bool:
        """Gradients flow through the (frozen) text encoder into the new rows."""
        return True

    def prepare(self) -> None:
        """Add the tokens and swap in a `PlaceholderEmbedding` initialised from the initializer."""
        self.tokens.prepare(self.components)

    def enable_gradient_checkpointing(self) -> None:
        """Checkpoint the UNet only (the text encoder stays in eval mode)."""
        unet = self.components.unet
        if hasattr(unet, "enable_gradient_checkpointing"):
            unet.enable_gradient_checkpointing()

    def denoiser(self) -> Any:
        """Text encoder in eval mode (no dropout), new rows trainable."""
        denoiser = super().denoiser()
        denoiser.text_encoder.eval()
        return denoiser

    def prompt_for(self, caption: str | None) -> str:
        """The caption with the placeholder expanded; `a photo of <token>` when it is absent."""
        return self.tokens.prompt_for(caption)

    def evaluation_instance_prompt(self) -> str:
        """The instance prompt when it names the placeholder, else `a photo of <token>`."""
        return self.tokens.evaluation_instance_prompt()

    def expand_prompt(self, prompt: str) -> str:
        """The placeholder replaced by its vectors' tokens (`<t> <t>_1 ...`)."""
        return self.tokens.expand_prompt(prompt)

    def export(self, state: dict[str, torch.Tensor], out_dir: Path) -> ExportedAdapter:
        """`learned_embeds.safetensors` with `{placeholder: vectors}`."""
        section = self.tokens.export(state, out_dir)
        return ExportedAdapter(files=[TI_EMBEDDINGS], embeddings=section)
