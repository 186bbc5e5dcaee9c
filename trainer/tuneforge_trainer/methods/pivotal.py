"""Pivotal tuning: new token embeddings (the pivot) and a LoRA, trained together.

The tokens are the shared `TokenPart` (as textual inversion), the LoRA the shared `LoraPart`
(as `lora`); this method adds what is its own: two optimizer parameter groups, the LoRA at
`training.learningRate` with weight decay and the new rows at
`pivotal.embeddingLearningRate` without it (textual inversion's), and the embeddings-only
warm-up (the LoRA group's learning rate is 0 for the first `pivotal.embeddingWarmupSteps`
steps; `tuneforge_trainer.param_groups`). The export is one adapter holding both
`pytorch_lora_weights.safetensors` and `learned_embeds.safetensors`; serving attaches both
for one adapter reference.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from tuneforge.api import (
    FineTuneJobSpec,
    LoraSpec,
    Method,
    PivotalSpec,
    Strategy,
    TextualInversionSpec,
)
from tuneforge.contract import LORA_WEIGHTS, TI_EMBEDDINGS
from tuneforge_trainer.errors import InvalidTrainingInput
from tuneforge_trainer.methods.base import ExportedAdapter, ParamGroup, TrainingMethod
from tuneforge_trainer.methods.lora_part import LoraPart, check_lora_targets
from tuneforge_trainer.methods.token_part import TokenPart, check_new_tokens, is_vectors_name

LORA_WEIGHT_DECAY = 1e-2
"""AdamW weight decay of the LoRA group (the `lora` method's); the embeddings have none."""
DEEPSPEED_REFUSAL = (
    "spec.resources.strategy: deepspeed is not supported with method pivotal: with pivotal "
    "tuning's two optimizer groups (LoRA and embeddings), gathering the AdamW state for a "
    "checkpoint fails under DeepSpeed ZeRO-2 ('exp_avg not found in optimizer state "
    "fragment'), so the job could not checkpoint or resume; use strategy ddp or fsdp"
)
"""Why preflight refuses DeepSpeed (measured in-process; not silently replaced by DDP)."""


class PivotalMethod(TrainingMethod):
    """New tokens and a LoRA, with separate learning rates and an optional warm-up."""

    method = Method.PIVOTAL
    captions_required = False

    @property
    def ti(self) -> TextualInversionSpec:
        """The new tokens (required by the spec for this method)."""
        assert self.spec.textual_inversion is not None
        return self.spec.textual_inversion

    @property
    def lora(self) -> LoraSpec:
        """The LoRA settings in force (defaults when the spec leaves them out)."""
        return self.spec.lora or LoraSpec()

    @property
    def pivotal(self) -> PivotalSpec:
        """The learning rate and warm-up of the embeddings (defaults when unset)."""
        return self.spec.pivotal or PivotalSpec()

    @cached_property
    def tokens(self) -> TokenPart:
        """The new tokens this method trains."""
        return TokenPart(self.ti, self.spec.dataset.instance_prompt)

    @cached_property
    def part(self) -> LoraPart:
        """The LoRA layers this method trains."""
        return LoraPart(self.lora, text_encoder=self.lora.train_text_encoder)

    @classmethod
    def preflight(cls, spec: FineTuneJobSpec, model_dir: Path) -> None:
        """Not under DeepSpeed (`DEEPSPEED_REFUSAL`); the placeholder tokens are new, the
        initializer is one token, the LoRA's target modules exist in the UNet."""
        if spec.resources.strategy == Strategy.DEEPSPEED:
            raise InvalidTrainingInput(DEEPSPEED_REFUSAL)
        check_new_tokens(spec, model_dir)
        check_lora_targets(spec.lora or LoraSpec(), model_dir)

    @property
    def trains_text_encoder(self) -> bool:
        """Gradients flow through the text encoder into the new rows (and its LoRA, if any)."""
        return True

    def prepare(self) -> None:
        """Add the tokens (new embedding rows), then the LoRA layers (not under DeepSpeed)."""
        if self.spec.resources.strategy == Strategy.DEEPSPEED:
            raise ValueError(DEEPSPEED_REFUSAL)
        self.tokens.prepare(self.components)
        self.part.prepare(self.components)

    def denoiser(self) -> Any:
        """Text encoder in eval mode (no dropout), as for textual inversion."""
        denoiser = super().denoiser()
        denoiser.text_encoder.eval()
        return denoiser

    def enable_gradient_checkpointing(self) -> None:
        """Checkpoint the UNet only (the text encoder stays in eval mode)."""
        unet = self.components.unet
        if hasattr(unet, "enable_gradient_checkpointing"):
            unet.enable_gradient_checkpointing()

    def param_groups(self, trainable: list[str]) -> list[ParamGroup]:
        """The LoRA (first: its learning rate is the one logged), then the new rows."""
        training = self.spec.training
        embeddings = [name for name in trainable if is_vectors_name(name)]
        lora = [name for name in trainable if not is_vectors_name(name)]
        if len(embeddings) != 1 or not lora:
            raise ValueError(
                f"pivotal tuning trains one block of new rows and LoRA layers; found "
                f"{len(embeddings)} blocks and {len(lora)} LoRA parameters"
            )
        return [
            ParamGroup(
                "lora",
                lora,
                training.learning_rate,
                LORA_WEIGHT_DECAY,
                starts_at_step=self.pivotal.embedding_warmup_steps,
            ),
            ParamGroup(
                "embeddings",
                embeddings,
                self.pivotal.learning_rate_for_embeddings(training.learning_rate),
                0.0,
            ),
        ]

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
        """Both files in one adapter: the LoRA (diffusers format) and the embeddings."""
        lora = {name: value for name, value in state.items() if not is_vectors_name(name)}
        section = self.part.export(self.components, lora, out_dir)
        embeddings = self.tokens.export(state, out_dir)
        return ExportedAdapter(
            files=[LORA_WEIGHTS, TI_EMBEDDINGS], lora=section, embeddings=embeddings
        )
