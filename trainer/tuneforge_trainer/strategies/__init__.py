"""Distribution strategies: DDP, FSDP2 and DeepSpeed ZeRO behind one interface."""

from __future__ import annotations

from tuneforge.api import Strategy, TrainingSpec
from tuneforge_trainer.strategies.base import TrainingStrategy, World
from tuneforge_trainer.strategies.ddp import DdpStrategy
from tuneforge_trainer.strategies.deepspeed import DeepSpeedStrategy
from tuneforge_trainer.strategies.fsdp import FsdpStrategy


def build_strategy(
    kind: Strategy,
    world: World,
    training: TrainingSpec,
    full_model: bool = False,
    zero_stage: int | None = None,
) -> TrainingStrategy:
    """The strategy object for `resources.strategy` (`zero_stage`: DeepSpeed's, forced)."""
    if kind == Strategy.FSDP:
        return FsdpStrategy(world, training)
    if kind == Strategy.DEEPSPEED:
        return DeepSpeedStrategy(world, training, full_model=full_model, stage=zero_stage)
    return DdpStrategy(world, training)


__all__ = [
    "DdpStrategy",
    "DeepSpeedStrategy",
    "FsdpStrategy",
    "TrainingStrategy",
    "World",
    "build_strategy",
]
