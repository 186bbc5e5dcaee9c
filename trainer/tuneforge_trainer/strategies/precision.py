"""Mixed precision, the same on every device: the device only names the autocast type.

`Precision` is what every strategy uses: `autocast()` around the forward (`torch.autocast`
on `cuda` or `cpu` alike), and for fp16 a gradient scaler driven explicitly
(`torch.amp.GradScaler`, or FSDP2's `ShardedGradScaler` whose inf check spans the shards).
accelerate builds no scaler on CPU, so the strategies never rely on accelerate's.

Trained parameters stay fp32 (the optimizer's masters); frozen weights stay fp32 too and are
cast op by op by autocast (FSDP2 additionally all-gathers in the half dtype through its
`MixedPrecisionPolicy`; DeepSpeed casts the whole module and keeps fp32 masters itself).

`precision_refusal` names the combinations a device cannot run: `check_precision` refuses them
at preflight, and every strategy refuses them again on its worker's own device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import Enum
from typing import Any

import torch

from tuneforge.api import FineTuneJob, MixedPrecision, Strategy
from tuneforge_trainer.errors import InvalidTrainingInput

HALF_DTYPES = {MixedPrecision.FP16: torch.float16, MixedPrecision.BF16: torch.bfloat16}


class LossScaling(Enum):
    """Who scales fp16 losses: torch's `GradScaler`, FSDP2's sharded one, or the engine."""

    TORCH = "torch"
    SHARDED = "sharded"
    ENGINE = "engine"


def half_dtype(precision: MixedPrecision) -> torch.dtype | None:
    """The autocast dtype of `precision`; None for `no` (fp32)."""
    return HALF_DTYPES.get(precision)


@contextlib.contextmanager
def autocast(precision: MixedPrecision, device_type: str) -> Iterator[None]:
    """`torch.autocast(device_type, half dtype)` for `precision` (cpu and cuda alike); nothing
    for `no`. Training (`Precision.autocast`) and rendering use this one context."""
    dtype = half_dtype(precision)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type, dtype=dtype):
        yield


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN has bf16 kernels on this CPU (AVX512-BF16 / AMX); without them torch's
    CPU bf16 runs on scalar fallbacks (correct, 50-125x slower than fp32 per op)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_has_native_fp16() -> bool:
    """Whether oneDNN has fp16 kernels on this CPU (AVX512-FP16 / AMX-FP16)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):
        return False


def precision_refusal(
    strategy: Strategy, precision: MixedPrecision, device_type: str
) -> str | None:
    """Why `strategy` cannot train in `precision` on a `device_type` device here, or None."""
    if precision == MixedPrecision.BF16 and device_type == "cuda":
        if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
            return (
                "spec.training.mixedPrecision bf16: this GPU has no bfloat16 support "
                "(it needs compute capability 8.0 or later): use fp16"
            )
    if (
        strategy == Strategy.DEEPSPEED
        and precision == MixedPrecision.FP16
        and device_type == "cpu"
        and not cpu_has_native_fp16()
    ):
        return (
            "spec.training.mixedPrecision fp16 with resources.strategy deepspeed on CPU: "
            "DeepSpeed's CPU accelerator trains fp16 only on CPUs with native fp16 "
            "(AVX512-FP16 or AMX-FP16), which this one lacks: use bf16, or strategy ddp or fsdp"
        )
    return None


def check_precision(job: FineTuneJob) -> None:
    """Preflight: refuse a strategy and precision the workers' device cannot run (workers on
    CPU are taken to be CPUs like this one; each worker checks its own device again)."""
    resources = job.spec.resources
    device_type = "cuda" if resources.gpus_per_worker > 0 else "cpu"
    refusal = precision_refusal(resources.strategy, job.spec.training.mixed_precision, device_type)
    if refusal:
        raise InvalidTrainingInput(refusal)


class Precision:
    """Autocast and fp16 gradient scaling for one device type."""

    def __init__(
        self,
        precision: MixedPrecision,
        device: torch.device,
        scaling: LossScaling = LossScaling.TORCH,
    ):
        """`scaling`: which fp16 scaler (none here when the engine scales itself)."""
        self.precision = precision
        self.dtype = half_dtype(precision)
        self.device_type = device.type
        self.scaler: Any = None
        if self.dtype == torch.float16 and scaling != LossScaling.ENGINE:
            if scaling == LossScaling.SHARDED:
                from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

                self.scaler = ShardedGradScaler(device=self.device_type)
            else:
                self.scaler = torch.amp.GradScaler(self.device_type)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """`torch.autocast(device type, dtype)`, or nothing in fp32."""
        with autocast(self.precision, self.device_type):
            yield

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to back-propagate (multiplied by the fp16 loss scale)."""
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients by the loss scale (before clipping)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Step the optimizer (skipped by the scaler on inf/NaN gradients) and update the scale."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state(self) -> dict[str, Any] | None:
        """The scaler's state (scale, growth tracker) as JSON numbers; None without a scaler."""
        if self.scaler is None:
            return None
        return {
            key: value.item() if isinstance(value, torch.Tensor) else value
            for key, value in self.scaler.state_dict().items()
        }

    def load_state(self, state: dict[str, Any] | None) -> None:
        """Restore what `state` returned (ignored without a scaler or a saved state)."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
