"""The optimizer and learning-rate schedule over a method's parameter groups.

A method names its groups (`TrainingMethod.param_groups`): most train one, pivotal tuning
two (the LoRA and the new embeddings, each with its learning rate). The loop lists the
trained names in group order (torch numbers an optimizer's parameters group by group, and a
checkpoint's optimizer state names them by that position), and every strategy hands the
optimizer factory the trained parameters in the order of those names. A group with `starts_at_step` has a learning rate of 0 before that
step: AdamW then leaves its parameters bit-identical (its update and its decoupled weight
decay are both scaled by the learning rate) while it keeps tracking their gradient moments.
The gate is a function of the step, so a resumed run rebuilds it exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from tuneforge_trainer.methods.base import ParamGroup


def build_adamw(
    groups: Sequence[ParamGroup], trainable: list[str], params: list[nn.Parameter]
) -> torch.optim.Optimizer:
    """AdamW with one torch param group per `groups` entry; `params` in `trainable` order."""
    if len(params) != len(trainable):
        raise ValueError(f"{len(params)} parameters for {len(trainable)} trained names")
    position = {name: index for index, name in enumerate(trainable)}
    grouped = [name for group in groups for name in group.names]
    if grouped != trainable:
        # torch numbers the parameters group by group; the checkpoint names them by position.
        missing = sorted(set(trainable) - set(grouped))[:3]
        extra = sorted(set(grouped) - set(trainable))[:3]
        raise ValueError(
            "parameter groups must hold every trained parameter exactly once, in the order of "
            f"the trained names (missing e.g. {missing}, unknown e.g. {extra})"
        )
    return torch.optim.AdamW(
        [
            {
                "params": [params[position[name]] for name in group.names],
                "lr": group.learning_rate,
                "weight_decay": group.weight_decay,
            }
            for group in groups
        ],
        betas=(0.9, 0.999),
        eps=1e-8,
    )


def gate_schedule(scheduler: Any, starts_at: Sequence[int]) -> Any:
    """`scheduler` (a `LambdaLR`, as every diffusers schedule is) with each group's factor 0
    before its `starts_at` step; the current learning rates are set for its position."""
    if not any(starts_at):
        return scheduler
    lambdas = scheduler.lr_lambdas
    if len(lambdas) != len(starts_at):
        raise ValueError(f"{len(starts_at)} group starts for {len(lambdas)} param groups")
    scheduler.lr_lambdas = [
        _gated(factor, start) for factor, start in zip(lambdas, starts_at, strict=True)
    ]
    # LambdaLR computed the learning rates for `last_epoch` when it was built: redo them.
    position = scheduler.last_epoch
    for group, factor in zip(scheduler.optimizer.param_groups, scheduler.lr_lambdas, strict=True):
        group["lr"] = group["initial_lr"] * factor(position)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
    return scheduler


def _gated(factor: Callable[[int], float], start: int) -> Callable[[int], float]:
    """`factor` once `step` (0-based: the optimizer step about to be taken) reaches `start`."""

    def gated(step: int) -> float:
        return factor(step) if step >= start else 0.0

    return gated
