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
        """`accelerator.prepare(model)`; the optimizer stays a plain torch optimizer.

        accelerate runs without its own mixed precision (it builds no fp16 scaler on CPU):
        the strategy's `Precision` autocasts and scales on every device.
        """
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.accelerator = Accelerator(
            cpu=self.world.device.type != "cuda",
            mixed_precision="no",
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
        )
        named = dict(model.named_parameters())
        self._params = [named[name] for name in trainable]
        self.optimizer = make_optimizer(self._params)
        self.model = self.accelerator.prepare(model)

    @contextlib.contextmanager
    def accumulating(self, boundary: bool) -> Iterator[None]:
        """`no_sync` on micro-batches before the boundary."""
        context: Any = (
            contextlib.nullcontext() if boundary else self.accelerator.no_sync(self.model)
        )
        with context:
            yield

    def backward(self, loss: torch.Tensor) -> None:
        """`accelerator.backward` of the (fp16: scaled) loss / accumulation steps."""
        self.accelerator.backward(
            self.precision.scale(loss / self.training.gradient_accumulation_steps)
        )

    def after_backward(self, boundary: bool) -> None:
        """Unscale, clip, step, zero at the boundary."""
        if not boundary:
            return
        assert self.optimizer is not None
        self.precision.unscale(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self._params, self.training.max_grad_norm)
        self.last_grad_norm = float(norm)
        self.precision.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)

    def unwrapped(self) -> nn.Module:
        """The model inside DDP (the model itself with one process).

        Not `accelerator.unwrap_model`: that imports DeepSpeed whenever it is installed, to
        test for its engine (3 s of CPU and a "Setting accelerator to CPU" warning in every
        DDP job's log); `prepare` wraps in torch's DDP only.
        """
        model = self.model
        if isinstance(model, nn.parallel.DistributedDataParallel):
            return model.module
        return model

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
        return named_optimizer_state(self.optimizer, names)

    def load_optimizer_state(self, names: list[str], state: OptimizerState) -> None:
        """Load the same state on every rank."""
        assert self.optimizer is not None
        self.optimizer.load_state_dict(indexed_optimizer_state(state, names))
