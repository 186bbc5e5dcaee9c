"""DDP through accelerate (`Accelerator.prepare`), as the diffusers training scripts do.

Inside Ray Train the process group already exists (gloo on CPU, NCCL on GPUs) and accelerate
joins it from the environment Ray sets. With one process the model is not wrapped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from tuneforge.api import MixedPrecision
from tuneforge_trainer.strategies.base import (
    OptimizerFactory,
    OptimizerState,
    TrainingStrategy,
    indexed_optimizer_state,
    named_optimizer_state,
    select,
)


class DdpStrategy(TrainingStrategy):
    """Data parallel: every rank holds the whole model; gradients are all-reduced."""

    name = "ddp"

    def setup(
        self, model: nn.Module, trainable: list[str], make_optimizer: OptimizerFactory
    ) -> None:
        """`accelerator.prepare(model, optimizer)`."""
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        on_cpu = self.world.device.type != "cuda"
        precision = "no" if on_cpu else self.training.mixed_precision.value
        if precision == MixedPrecision.NO.value:
            precision = "no"
        self.accelerator = Accelerator(
            cpu=on_cpu,
            mixed_precision=precision,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
        )
        named = dict(model.named_parameters())
        optimizer = make_optimizer([named[name] for name in trainable])
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self._params = [named[name] for name in trainable]

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        """Forward under accelerate's autocast."""
        with self.accelerator.autocast():
            return self.model(*args)  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def accumulating(self, boundary: bool) -> Iterator[None]:
        """`no_sync` on micro-batches before the boundary."""
        context: Any = (
            contextlib.nullcontext() if boundary else self.accelerator.no_sync(self.model)
        )
        with context:
            yield

    def backward(self, loss: torch.Tensor) -> None:
        """`accelerator.backward(loss / accumulation steps)`."""
        self.accelerator.backward(loss / self.training.gradient_accumulation_steps)

    def after_backward(self, boundary: bool) -> None:
        """Clip, step, zero at the boundary."""
        if not boundary:
            return
        norm = self.accelerator.clip_grad_norm_(self._params, self.training.max_grad_norm)
        self.last_grad_norm = float(norm) if norm is not None else None
        assert self.optimizer is not None
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def unwrapped(self) -> nn.Module:
        """The model inside DDP."""
        return self.accelerator.unwrap_model(self.model)  # type: ignore[no-any-return]

    def full_state_dict(self, names: list[str]) -> dict[str, torch.Tensor]:
        """Every rank holds everything: rank 0 copies the trained tensors."""
        if not self.world.is_main:
            return {}
        return select(dict(self.unwrapped().named_parameters()), names)

    def optimizer_state(self, names: list[str]) -> OptimizerState | None:
        """Every rank holds the same AdamW state: rank 0 copies it."""
        if not self.world.is_main:
            return {}
        assert self.optimizer is not None
        return named_optimizer_state(self.optimizer.optimizer, names)

    def load_optimizer_state(self, names: list[str], state: OptimizerState) -> None:
        """Load the same state on every rank."""
        assert self.optimizer is not None
        self.optimizer.optimizer.load_state_dict(indexed_optimizer_state(state, names))
