"""DeepSpeed through its own API: `deepspeed.initialize` with ZeRO-2 or ZeRO-3.

accelerate's DeepSpeed plugin does not engage on CPU, so the engine is built directly (the
same call a GPU makes). A torch AdamW is passed in, which avoids compiling DeepSpeed's fused
ops. ZeRO-3 (parameters sharded) is used when the full UNet trains, ZeRO-2 otherwise; the
stage can be forced (`TrainerSettings.deepspeed_zero_stage`, handed over in the plan). Gradient accumulation and
clipping are the engine's.

Precision: with bf16/fp16 the engine casts the whole module to the half dtype, keeps fp32
masters of the trained parameters in its optimizer and scales fp16 losses itself; the
strategy casts the floating-point inputs (the noisy latents) to the module's dtype.
Checkpoints hold the fp32 masters and the AdamW moments, gathered with DeepSpeed's
`safe_get_full_*` (collective) and restored with `safe_set_full_*`, so a resume is exact.

Collectives: on a CPU accelerator DeepSpeed would JIT-compile its shared-memory all-reduce
(`deepspeed_shm_comm`, 2-3 minutes of ninja on two cores in every fresh pod, rebuilt when its
flags differ between processes). It serves only `inference_all_reduce`; training collectives
always go through torch.distributed. The strategy marks that op unavailable on CPU, so training
collectives run on gloo exactly as they run on NCCL on a GPU, with no compiler in the pod.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tuneforge.api import MixedPrecision
from tuneforge_trainer.strategies.base import (
    OptimizerFactory,
    OptimizerState,
    TrainingStrategy,
    World,
    select,
)
from tuneforge_trainer.strategies.precision import LossScaling

#: The AdamW slots DeepSpeed's `safe_get_full_optimizer_state` gathers.
ADAM_MOMENTS = ("exp_avg", "exp_avg_sq")


def deepspeed_config(
    world: World,
    batch_size: int,
    accumulation: int,
    max_grad_norm: float,
    stage: int,
    precision: MixedPrecision,
) -> dict[str, Any]:
    """The engine configuration (batch sizes must satisfy DeepSpeed's product rule)."""
    return {
        "train_micro_batch_size_per_gpu": batch_size,
        "gradient_accumulation_steps": accumulation,
        "train_batch_size": batch_size * accumulation * world.world_size,
        "gradient_clipping": max_grad_norm,
        "zero_optimization": {"stage": stage},
        "fp16": {"enabled": precision == MixedPrecision.FP16},
        "bf16": {"enabled": precision == MixedPrecision.BF16},
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
        "zero_allow_untested_optimizer": True,
    }


def skip_cpu_shared_memory_collectives() -> None:
    """On a CPU accelerator, keep DeepSpeed from JIT-compiling its inference-only shm all-reduce."""
    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator

    if get_accelerator().device_name() == "cpu":
        # DeepSpeed caches this dict in the module on first access; edits to it persist.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


class DeepSpeedStrategy(TrainingStrategy):
    """ZeRO data parallel with DeepSpeed's engine."""

    name = "deepspeed"
    loss_scaling = LossScaling.ENGINE

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

        skip_cpu_shared_memory_collectives()
        named = dict(model.named_parameters())
        optimizer = make_optimizer([named[name] for name in trainable])
        # ZeRO flattens each param group; remember which names each group holds.
        name_of = {id(named[name]): name for name in trainable}
        self._group_names = [
            [name_of[id(param)] for param in group["params"]] for group in optimizer.param_groups
        ]
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
        """The engine's forward, floating-point inputs cast to the module's half dtype."""
        dtype = self.precision.dtype
        if dtype is not None:
            args = tuple(arg.to(dtype) if arg.is_floating_point() else arg for arg in args)
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

    def _named_trainable(self, names: list[str]) -> list[tuple[str, nn.Parameter]]:
        named = dict(self.unwrapped().named_parameters())
        return [(name, named[name]) for name in names]

    def full_state_dict(self, names: list[str]) -> dict[str, torch.Tensor]:
        """Collective: the fp32 masters of `names` (gathered from every ZeRO partition)."""
        from deepspeed.utils import safe_get_full_fp32_param

        state = {name: safe_get_full_fp32_param(p) for name, p in self._named_trainable(names)}
        if not self.world.is_main:
            return {}
        return select(state, names)

    def optimizer_state(self, names: list[str]) -> OptimizerState | None:
        """Collective: the full AdamW moments by parameter name, and the step count (rank 0)."""
        from deepspeed.utils import safe_get_full_optimizer_state

        assert self.optimizer is not None
        step = self._adam_step()
        state: dict[str, dict[str, Any]] = {}
        for name, param in self._named_trainable(names):
            slots = {key: safe_get_full_optimizer_state(param, key) for key in ADAM_MOMENTS}
            moments = {key: value.detach().to("cpu") for key, value in slots.items()}
            state[name] = {"step": step.clone(), **moments}
        if not self.world.is_main:
            return {}
        groups = [
            {**{k: v for k, v in group.items() if k != "params"}, "params": list(group_names)}
            for group, group_names in zip(
                self.optimizer.param_groups, self._group_names, strict=True
            )
        ]
        return {"state": state, "param_groups": groups}

    def load_optimizer_state(self, names: list[str], state: OptimizerState) -> None:
        """Put the moments and the step count back into every rank's partitions."""
        from deepspeed.utils import safe_set_full_optimizer_state

        assert self.optimizer is not None
        self._create_adam_state(next(iter(state["state"].values()))["step"])
        for name, param in self._named_trainable(names):
            slots = state["state"][name]
            for key in ADAM_MOMENTS:
                safe_set_full_optimizer_state(param, slots[key].to(self.world.device), key)
        for group, saved in zip(self.optimizer.param_groups, state["param_groups"], strict=True):
            group.update({k: v for k, v in saved.items() if k != "params"})

    def _create_adam_state(self, step: torch.Tensor) -> None:
        """AdamW's state on ZeRO's flat fp32 partitions (DeepSpeed creates it at the first step,
        too late to load a checkpoint into): zero moments, `step`, linked to the parameters."""
        assert self.optimizer is not None
        zero = self.engine.optimizer
        if self.stage == 3:
            flats = zero.fp32_partitioned_groups_flat
        else:
            flats = zero.single_partition_of_fp32_groups
        for flat in flats:
            self.optimizer.state[flat] = {
                "step": torch.as_tensor(step, dtype=torch.float32).clone(),
                "exp_avg": torch.zeros_like(flat),
                "exp_avg_sq": torch.zeros_like(flat),
            }
        if self.stage != 3:
            zero._lazy_init_hp_params_optimizer_state()  # ZeRO-2 maps each parameter's slice

    def restore_masters(self, tensors: dict[str, torch.Tensor]) -> None:
        """Write checkpointed fp32 tensors into the engine's fp32 masters (and the module)."""
        from deepspeed.utils import safe_set_full_fp32_param

        for name, param in self._named_trainable(list(tensors)):
            safe_set_full_fp32_param(param, tensors[name].to(self.world.device, torch.float32))

    def _adam_step(self) -> torch.Tensor:
        """AdamW's step count (one for all of ZeRO's flat partitions)."""
        assert self.optimizer is not None
        steps = [slots["step"] for slots in self.optimizer.state.values() if "step" in slots]
        if not steps:
            return torch.tensor(0.0)
        return torch.as_tensor(steps[0], dtype=torch.float32).detach().to("cpu").clone()
