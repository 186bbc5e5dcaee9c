"""Typed settings of mixed-adapter batching: `ServingConfig.mixed_batching`.

camelCase aliases like the rest of the serving config (`mixedBatching: {enabled: true}`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class MixedBatchingConfig(BaseModel):
    """How requests with different adapters are gathered into one pipeline call."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )

    enabled: bool = False
    """Batches share their shape only, each sample with its own adapters (opt in); off:
    batches share shape and adapter choice (`batching`)."""
    max_batch_size: int = Field(default=4, ge=1)
    """Most requests in one pipeline call (each may bring several images)."""
    max_batch_images: int = Field(default=16, ge=1)
    """Most images (samples) in one pipeline call; requests beyond it wait for the next."""
    max_wait_s: float = Field(default=0.02, ge=0)
    """How long the oldest request of a shape waits for company before its batch runs."""
    max_combined_loras: int = Field(default=2, ge=1)
    """LoRAs one request may combine inside a mixed batch (each takes its slot's rank in rows of
    a combined adapter); a request with more runs in its own batch (fallback, counted)."""
