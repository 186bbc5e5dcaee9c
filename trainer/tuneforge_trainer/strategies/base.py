"""The distribution strategy layer: how one `Denoiser` is wrapped, stepped and saved.

The loop calls the same five operations under every strategy:

    strategy.setup(model, trainable_names, make_optimizer)
    with strategy.accumulating(boundary): strategy.backward(loss)   # each micro-batch
    strategy.after_backward(boundary)                             # steps at the boundary
    strategy.full_state_dict(names)                               # collective; full on rank 0

DDP (through accelerate), FSDP2 (`fully_shard`) and DeepSpeed (`deepspeed.initialize`,
ZeRO-2/3) implement them with the code path a GPU uses; on CPU the process group is gloo.
Mixed precision is `strategies.precision.Precision`, the same on every device.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tuneforge.api import Strategy, TrainingSpec
from tuneforge_trainer.strategies.precision import LossScaling, Precision, precision_refusal

OptimizerFactory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]
#: `{"state": {param name: {"step": t, "exp_avg": t, ...}}, "param_groups": [{..., "params": [names]}]}`
OptimizerState = dict[str, Any]


def named_optimizer_state(optimizer: torch.optim.Optimizer, names: list[str]) -> OptimizerState:
    """A torch optimizer's state dict with parameter indices replaced by `names` (same order)."""
    raw = optimizer.state_dict()
    state = {
        names[index]: {key: value.detach().to("cpu").clone() for key, value in slots.items()}
        for index, slots in raw["state"].items()
    }
    groups = [
        {**group, "params": [names[index] for index in group["params"]]}
        for group in raw["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def indexed_optimizer_state(named: OptimizerState, names: list[str]) -> dict[str, Any]:
    """The inverse of `named_optimizer_state` for an optimizer built over `names`."""
    position = {name: index for index, name in enumerate(names)}
    missing = [name for name in names if name not in named["state"]]
    if missing and named["state"]:
        raise ValueError(f"optimizer state lacks {len(missing)} parameters, e.g. {missing[:3]}")
    return {
        "state": {position[name]: slots for name, slots in named["state"].items()},
        "param_groups": [
            {**group, "params": [position[name] for name in group["params"]]}
            for group in named["param_groups"]
        ],
    }


@dataclass(frozen=True)
class World:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the one that writes checkpoints and logs)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether a process group with more than one member is in use."""
        return self.world_size > 1


class TrainingStrategy(ABC):
    """Base of the DDP, FSDP2 and DeepSpeed strategies."""

    name: str = ""
    #: Who scales fp16 losses (FSDP2: the sharded scaler; DeepSpeed: its engine).
    loss_scaling: LossScaling = LossScaling.TORCH

    def __init__(self, world: World, training: TrainingSpec):
        """Remember the world and the optimisation settings; refuse what the device cannot run."""
        refusal = precision_refusal(
            Strategy(self.name), training.mixed_precision, world.device.type
        )
        if refusal:
            raise ValueError(refusal)
        self.world = world
        self.training = training
        self.precision = Precision(training.mixed_precision, world.device, self.loss_scaling)
        self.model: Any = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.last_grad_norm: float | None = None

    @abstractmethod
    def setup(
        self, model: nn.Module, trainable: list[str], make_optimizer: OptimizerFactory
    ) -> None:
        """Wrap `model` (already on the device) and create the optimizer for `trainable`."""

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        """Run the wrapped model under autocast (on every device) with mixed precision."""
        with self.precision.autocast():
            return self.model(*args)  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def accumulating(self, boundary: bool) -> Iterator[None]:
        """Context of one micro-batch; gradients are synchronised only at the boundary."""
        yield

    @abstractmethod
    def backward(self, loss: torch.Tensor) -> None:
        """Back-propagate one micro-batch's (unscaled) loss."""

    @abstractmethod
    def after_backward(self, boundary: bool) -> None:
        """Clip, step and zero the gradients when `boundary` (the last micro-batch)."""

    @abstractmethod
    def unwrapped(self) -> nn.Module:
        """The model inside the wrapper (parameter names as in the unwrapped `Denoiser`)."""

    @abstractmethod
    def full_state_dict(self, names: list[str]) -> dict[str, torch.Tensor]:
        """Collective: the full (unsharded) tensors of `names` on rank 0, on CPU; {} elsewhere."""

    def optimizer_state(self, names: list[str]) -> OptimizerState | None:
        """Collective: the full optimizer state keyed by parameter name (rank 0), or None when
        this strategy cannot give one (DeepSpeed keeps its own partitioned format)."""
        return None

    def load_optimizer_state(  # noqa: B027 - optional: strategies without a state keep this
        self, names: list[str], state: OptimizerState
    ) -> None:
        """Restore what `optimizer_state` returned (called on every rank after `setup`)."""

    def restore_masters(  # noqa: B027 - optional: strategies whose module holds fp32 keep this
        self, tensors: dict[str, torch.Tensor]
    ) -> None:
        """After `setup`: put checkpointed fp32 tensors where the optimizer keeps its masters
        (the module itself, already restored, unless the engine holds separate copies)."""

    def scaler_state(self) -> dict[str, Any] | None:
        """The fp16 loss scaler's state for the checkpoint (None without one)."""
        return self.precision.state()

    def load_scaler_state(self, state: dict[str, Any] | None) -> None:
        """Restore the loss scaler's state from a checkpoint."""
        self.precision.load_state(state)

    def trainable_parameters(self, names: list[str]) -> list[nn.Parameter]:
        """The parameters of `names`, in that order, as the wrapped model holds them now."""
        named = dict(self.unwrapped().named_parameters())
        return [named[name] for name in names]


def select(state: dict[str, torch.Tensor], names: list[str]) -> dict[str, torch.Tensor]:
    """The entries of `names`, detached, contiguous and on CPU."""
    missing = [name for name in names if name not in state]
    if missing:
        raise KeyError(f"state dict lacks {len(missing)} trained tensors, e.g. {missing[:3]}")
    return {name: state[name].detach().to("cpu").contiguous() for name in names}
