"""FSDP2: `torch.distributed.fsdp.fully_shard` per UNet block and text-encoder layer.

Saving gathers each trained parameter's shards (`DTensor.full_tensor()`) onto rank 0:
saving the sharded module's own `state_dict()` writes local shards (the trap of diffusers
#9393), and gathering the whole state dict would move every frozen weight too. Frozen and
trained parameters may share a group.
Mixed precision: the policy all-gathers parameters in the half dtype and reduces gradients in
fp32, the forward runs under autocast (norms stay fp32), and fp16 scales gradients with
`ShardedGradScaler`, whose inf check is all-reduced over the shards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from tuneforge_trainer.strategies.base import (
    OptimizerFactory,
    OptimizerState,
    TrainingStrategy,
    select,
)
from tuneforge_trainer.strategies.precision import LossScaling


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The submodules sharded on their own: UNet down/mid/up blocks, text-encoder layers."""
    units: list[nn.Module] = []
    unet = getattr(model, "unet", None)
    if unet is not None:
        units += list(getattr(unet, "down_blocks", []))
        if getattr(unet, "mid_block", None) is not None:
            units.append(unet.mid_block)
        units += list(getattr(unet, "up_blocks", []))
    text_encoder = getattr(model, "text_encoder", None)
    if text_encoder is not None:
        encoder = text_encoder.get_encoder() if hasattr(text_encoder, "get_encoder") else None
        layers = getattr(encoder, "layers", None) if encoder is not None else None
        if layers is None:
            layers = [m for n, m in text_encoder.named_modules() if n.endswith("encoder.layers")]
            layers = list(layers[0]) if layers else []
        units += list(layers)
    return units


class FsdpStrategy(TrainingStrategy):
    """Fully sharded data parallel (FSDP2)."""

    name = "fsdp"
    loss_scaling = LossScaling.SHARDED

    def setup(
        self, model: nn.Module, trainable: list[str], make_optimizer: OptimizerFactory
    ) -> None:
        """Shard the blocks, then the root; build the optimizer on the sharded parameters."""
        import torch.distributed as dist
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        if not dist.is_initialized():
            raise RuntimeError("strategy fsdp needs a process group (run under Ray Train)")
        # All-gather in the half dtype, reduce gradients in fp32 onto the fp32 shards.
        policy = MixedPrecisionPolicy(param_dtype=self.precision.dtype, reduce_dtype=torch.float32)
        for unit in shard_units(model):
            fully_shard(unit, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
        self.model = model
        self._names = trainable
        self.optimizer = make_optimizer(self.trainable_parameters(trainable))

    @contextlib.contextmanager
    def accumulating(self, boundary: bool) -> Iterator[None]:
        """Reduce-scatter gradients only on the boundary micro-batch."""
        self.model.set_requires_gradient_sync(boundary)
        try:
            yield
        finally:
            self.model.set_requires_gradient_sync(True)

    def backward(self, loss: torch.Tensor) -> None:
        """Plain autograd on the (fp16: scaled) loss / accumulation steps."""
        self.precision.scale(loss / self.training.gradient_accumulation_steps).backward()

    def after_backward(self, boundary: bool) -> None:
        """Unscale (inf check across shards), clip (DTensor-aware), step, zero at the boundary."""
        if not boundary:
            return
        assert self.optimizer is not None
        self.precision.unscale(self.optimizer)
        params = self.trainable_parameters(self._names)
        norm = torch.nn.utils.clip_grad_norm_(params, self.training.max_grad_norm)
        full_norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        self.last_grad_norm = float(full_norm)
        self.precision.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)

    def unwrapped(self) -> nn.Module:
        """FSDP2 shards in place: the module is the model."""
        return self.model  # type: ignore[no-any-return]

    def full_state_dict(self, names: list[str]) -> dict[str, torch.Tensor]:
        """Collective: each trained parameter's shards gathered (`full_tensor`), kept on rank 0.

        Only the trained tensors travel; the frozen weights are never gathered.
        """
        from torch.distributed.tensor import DTensor

        named = dict(self.model.named_parameters())
        state = {}
        for name in names:  # the same order on every rank
            param = named[name]
            state[name] = param.full_tensor() if isinstance(param, DTensor) else param
        if not self.world.is_main:
            return {}
        return select(state, names)

    def optimizer_state(self, names: list[str]) -> OptimizerState | None:
        """Collective: the full (unsharded) optimizer state on rank 0, keyed by FQN."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_optimizer_state_dict,
        )

        assert self.optimizer is not None
        state = get_optimizer_state_dict(
            self.model,
            self.optimizer,
            options=StateDictOptions(full_state_dict=True, cpu_offload=True),
        )
        return dict(state) if self.world.is_main else {}

    def load_optimizer_state(self, names: list[str], state: OptimizerState) -> None:
        """Shard the full state back onto every rank."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        assert self.optimizer is not None
        set_optimizer_state_dict(
            self.model,
            self.optimizer,
            optim_state_dict=state,
            options=StateDictOptions(full_state_dict=True),
        )
