"""Pivotal tuning settings (`spec.pivotal`): new tokens and a LoRA trained together.

`method: pivotal` learns the new tokens of `spec.textualInversion` (the "pivot") and the LoRA
of `spec.lora` in one job, as the SDXL pivotal-tuning recipes do. The LoRA trains at
`training.learningRate` on `training.lrScheduler`; the embeddings have a learning rate of
their own on the same schedule. The first `embeddingWarmupSteps` steps train only the
embeddings (the LoRA's learning rate is 0), so the LoRA starts from tokens that already point
at the subject. The result is one adapter holding both files.
"""

from __future__ import annotations

from pydantic import Field

from tuneforge.api.base import ApiModel


class PivotalSpec(ApiModel):
    """Pivotal tuning settings (method `pivotal`): the embeddings' learning rate and warm-up."""

    embedding_learning_rate: float | None = Field(default=None, gt=0, le=1)
    """Peak learning rate of the new token embeddings (AdamW, no weight decay), e.g. `5e-3`; unset means `training.learningRate`, which the LoRA always uses."""
    embedding_warmup_steps: int = Field(default=0, ge=0)
    """Optimizer steps at the start that train only the embeddings (the LoRA's learning rate is 0); then both train. Less than `training.maxSteps`."""

    def learning_rate_for_embeddings(self, lora_learning_rate: float) -> float:
        """The embeddings' learning rate in force, given the LoRA's (`training.learningRate`)."""
        if self.embedding_learning_rate is None:
            return lora_learning_rate
        return self.embedding_learning_rate
