"""Resumable checkpoints: trained tensors, progress counters, and the exported adapter.

A checkpoint directory holds

    trainable.safetensors   the trained parameters (full, unsharded), by Denoiser name
    trainer_state.json      {"step": N, "job_uid": ..., "method": ..., "loss_scaler": {...}}
    optimizer.safetensors   AdamW moments by parameter name (`<name>::<slot>`), and
    optimizer.json          its param groups (every strategy: DeepSpeed's are gathered too)
    adapter/                the adapter files and tuneforge-adapter.json at step N

so any checkpoint, the last one in particular, can be registered as is. Everything is
safetensors or JSON: nothing is unpickled on resume. With the optimizer state, the fp16 loss
scale (`loss_scaler`, torch's scaler only), the LR schedule, the data order and the per-step
noise, a resumed run continues exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

TRAINABLE_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
OPTIMIZER_META = "optimizer.json"
SLOT_SEPARATOR = "::"
STATE_FILE = "trainer_state.json"
ADAPTER_DIR = "adapter"


@dataclass(frozen=True)
class CheckpointState:
    """What `read_checkpoint` found."""

    step: int
    job_uid: str | None
    tensors: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None = None
    loss_scaler: dict[str, Any] | None = None


def write_optimizer_state(directory: Path, state: dict[str, Any]) -> None:
    """`{"state": {name: {slot: tensor|number}}, "param_groups": [...]}` as safetensors + JSON."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for name, slots in state["state"].items():
        for slot, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{name}{SLOT_SEPARATOR}{slot}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(name, {})[slot] = value
    save_file(tensors, str(directory / OPTIMIZER_FILE))
    meta = {"param_groups": state["param_groups"], "scalars": scalars}
    (directory / OPTIMIZER_META).write_text(json.dumps(meta))


def read_optimizer_state(directory: Path) -> dict[str, Any] | None:
    """The optimizer state written by `write_optimizer_state`, or None when there is none."""
    if not (directory / OPTIMIZER_FILE).is_file():
        return None
    meta = json.loads((directory / OPTIMIZER_META).read_text())
    state: dict[str, dict[str, Any]] = {}
    for key, tensor in load_file(str(directory / OPTIMIZER_FILE)).items():
        name, slot = key.rsplit(SLOT_SEPARATOR, 1)
        state.setdefault(name, {})[slot] = tensor
    for name, slots in meta["scalars"].items():
        state.setdefault(name, {}).update(slots)
    return {"state": state, "param_groups": meta["param_groups"]}


def write_checkpoint(
    directory: Path,
    step: int,
    job_uid: str,
    method: str,
    tensors: dict[str, torch.Tensor],
    optimizer: dict[str, Any] | None = None,
    loss_scaler: dict[str, Any] | None = None,
) -> Path:
    """Write tensors, counters, optimizer and loss-scaler state (the adapter goes into
    `directory/adapter`)."""
    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {name: tensor.contiguous() for name, tensor in tensors.items()},
        str(directory / TRAINABLE_FILE),
    )
    state = {"step": step, "job_uid": job_uid, "method": method, "loss_scaler": loss_scaler}
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2))
    if optimizer:
        write_optimizer_state(directory, optimizer)
    return directory


def read_checkpoint(directory: Path) -> CheckpointState:
    """Read a checkpoint written by `write_checkpoint`."""
    state = json.loads((directory / STATE_FILE).read_text())
    return CheckpointState(
        step=int(state["step"]),
        job_uid=state.get("job_uid"),
        tensors=load_file(str(directory / TRAINABLE_FILE)),
        optimizer=read_optimizer_state(directory),
        loss_scaler=state.get("loss_scaler"),
    )


def restore_trainable(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy checkpointed tensors into `model`'s parameters of the same names (strictly)."""
    params = dict(model.named_parameters())
    unknown = sorted(set(tensors) - set(params))
    if unknown:
        raise ValueError(
            f"checkpoint holds {len(unknown)} tensors this model lacks (e.g. {unknown[:3]}): "
            "it was written by a different job spec"
        )
    with torch.no_grad():
        for name, tensor in tensors.items():
            if params[name].shape != tensor.shape:
                raise ValueError(
                    f"checkpoint tensor {name} has shape {tuple(tensor.shape)}, "
                    f"model has {tuple(params[name].shape)}"
                )
            params[name].copy_(tensor)
