"""DeepSpeed through its own API: `deepspeed.initialize` with ZeRO-2 or ZeRO-3.

accelerate's DeepSpeed plugin does not engage on CPU, so the engine is built directly (the
same call a GPU makes). A torch AdamW is passed in, which avoids compiling DeepSpeed's fused
ops. ZeRO-3 (parameters sharded) is used when the full UNet trains, ZeRO-2 otherwise; the
stage can be forced (`TrainerSettings.deepspeed_zero_stage`, handed over in the plan). Gradient accumulation and
clipping are the engine's; saving gathers ZeRO-3 shards onto rank 0.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tuneforge.api import MixedPrecision
from tuneforge_trainer.strategies.base import OptimizerFactory, TrainingStrategy, World, select


def deepspeed_config(
    world: World,
    batch_size: int,
    accumulation: int,
    max_grad_norm: float,
    stage: int,
    precision: MixedPrecision,
) -> dict[str, Any]:
    """The engine configuration (batch sizes must satisfy DeepSpeed's product rule)."""
    on_gpu = world.device.type == "cuda"
    return {
        "train_micro_batch_size_per_gpu": batch_size,
        "gradient_accumulation_steps": accumulation,
        "train_batch_size": batch_size * accumulation * world.world_size,
        "gradient_clipping": max_grad_norm,
        "zero_optimization": {"stage": stage},
        "fp16": {"enabled": on_gpu and precision == MixedPrecision.FP16},
        "bf16": {"enabled": on_gpu and precision == MixedPrecision.BF16},
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
        "zero_allow_untested_optimizer": True,
    }


class DeepSpeedStrategy(TrainingStrategy):
    """ZeRO data parallel with DeepSpeed's engine."""

    name = "deepspeed"

    def __init__(
        self, world: World, training: Any, full_model: bool = False, stage: int | None = None
    ):
        """`full_model`: the whole UNet trains (ZeRO-3 unless `stage` forces another)."""
        super().__init__(world, training)
        self.stage = stage if stage is not None else (3 if full_model else 2)

    def setup(
        self, model: nn.Module, trainable: list[str], make_optimizer: OptimizerFactory
    ) -> None:
        """`deepspeed.initialize(model, optimizer=AdamW(trainable), config)`."""
        import deepspeed

        named = dict(model.named_parameters())
        optimizer = make_optimizer([named[name] for name in trainable])
        config = deepspeed_config(
            self.world,
            self.training.batch_size,
            self.training.gradient_accumulation_steps,
            self.training.max_grad_norm,
            self.stage,
            self.training.mixed_precision,
        )
        engine, ds_optimizer, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, config=config, dist_init_required=False
        )
        self.model = engine
        self.engine = engine
        # The LR scheduler drives the torch optimizer's param groups, which ZeRO steps.
        self.optimizer = optimizer
        self._ds_optimizer = ds_optimizer

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        """The engine's forward (it casts for fp16/bf16 itself)."""
        return self.engine(*args)  # type: ignore[no-any-return]

    def backward(self, loss: torch.Tensor) -> None:
        """`engine.backward` (it divides by the accumulation steps)."""
        self.engine.backward(loss)

    def after_backward(self, boundary: bool) -> None:
        """`engine.step()` every micro-batch; the engine steps the optimizer at the boundary."""
        self.engine.step()
        if boundary:
            norm = self.engine.get_global_grad_norm()
            self.last_grad_norm = float(norm) if norm is not None else None

    def unwrapped(self) -> nn.Module:
        """The module inside the engine."""
        return self.engine.module  # type: ignore[no-any-return]

    def full_state_dict(self, names: list[str]) -> dict[str, torch.Tensor]:
        """ZeRO-3 gathers onto rank 0; with ZeRO-2 every rank holds full parameters."""
        if self.stage == 3:
            state = self.engine._zero3_consolidated_16bit_state_dict()
            if not self.world.is_main:
                return {}
            return select(state, names)
        if not self.world.is_main:
            return {}
        return select(dict(self.unwrapped().named_parameters()), names)
