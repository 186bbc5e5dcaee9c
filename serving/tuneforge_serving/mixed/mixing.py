"""`SampleMixing`: what the engine needs to give every sample of one call its own adapters.

The engine's one generation path asks it to plan a batch into calls (`plan`: requests
that cannot be mixed get a call of their own, counted; the rest are split to fit the
slots) and, for a call whose requests differ in their LoRA choices, to route each sample
to its own choice (`routed`: `AdapterMixer` names, `SampleRouter` hooks).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from tuneforge_serving.generation import LoraChoice, PlannedCall, StagedRequest
from tuneforge_serving.lora_slots import LoraSlotBank
from tuneforge_serving.mixed.config import MixedBatchingConfig
from tuneforge_serving.mixed.metrics import MixedBatchMetrics
from tuneforge_serving.mixed.mixes import AdapterMixer
from tuneforge_serving.mixed.plan import fallback_reason, split_for_slots
from tuneforge_serving.mixed.routing import SampleRouter


class SampleMixing:
    """Per-sample LoRA routing on an engine's slots, with its limits and metrics."""

    def __init__(
        self,
        lora_slots: LoraSlotBank,
        config: MixedBatchingConfig,
        metrics: MixedBatchMetrics,
    ) -> None:
        self.lora_slots = lora_slots
        self.config = config
        self.metrics = metrics
        self.router = SampleRouter(lora_slots.layers.values())
        self.mixer = AdapterMixer(
            lora_slots.layers, lora_slots.ranks, lora_slots.scale, config.max_combined_loras
        )

    def plan(self, requests: list[StagedRequest]) -> list[PlannedCall]:
        """Calls for `requests`: one each for those that cannot be mixed, the rest by slots."""
        calls: list[PlannedCall] = []
        mixable: list[StagedRequest] = []
        merged = self.router.any_merged()
        for request in requests:
            reason = fallback_reason(request.lora_count, self.config.max_combined_loras, merged)
            if reason is None:
                mixable.append(request)
                continue
            self.metrics.fallbacks.labels(reason.value).inc()
            calls.append(PlannedCall([request]))
        ranks = {staged.key: staged.rank for request in mixable for staged in request.staged}
        groups = split_for_slots(
            [frozenset(staged.key for staged in request.staged) for request in mixable],
            [request.job.num_images for request in mixable],
            self.lora_slots.n_slots,
            self.config.max_batch_images,
            fits=lambda keys: self.lora_slots.fits([ranks[key] for key in keys]),
        )
        if len(groups) > 1:
            self.metrics.slot_splits.inc(len(groups) - 1)
        calls.extend(PlannedCall([mixable[p] for p in group], mixed=True) for group in groups)
        return calls

    @contextmanager
    def routed(self, choices: Sequence[LoraChoice], image_counts: Sequence[int]) -> Iterator[None]:
        """Within the block, the images of request `i` run its own `choices[i]` (hold the
        engine's lock)."""
        names = self.mixer.prepare([tuple(sorted(choice)) for choice in choices])
        # Activating the used slots mounts the LoRA layers any of them covers; the names,
        # not the active set, decide what each sample computes there.
        used = sorted({index for choice in choices for index, _ in choice})
        self.lora_slots.activate([(index, 1.0) for index in used])
        sample_names = [
            name for name, count in zip(names, image_counts, strict=True) for _ in range(count)
        ]
        with self.router.route(sample_names):
            yield

    def observe_call(self, images: int, adapters: int) -> None:
        """Record one mixed pipeline call."""
        self.metrics.call_images.observe(images)
        self.metrics.call_adapters.observe(adapters)
