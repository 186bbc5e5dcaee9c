"""Resumable checkpoints: trained tensors, progress counters, and the exported adapter.

A checkpoint directory holds

    trainable.safetensors   the trained parameters (full, unsharded), by Denoiser name
    trainer_state.json      {"step": N, "job_uid": ..., "method": ...}
    adapter/                the adapter files and tuneforge-adapter.json at step N

so any checkpoint, the last one in particular, can be registered as is. Everything is
safetensors or JSON: nothing is unpickled on resume. Optimizer moments are not kept; the
step, the LR schedule, the data order and the noise restart exactly where they stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

TRAINABLE_FILE = "trainable.safetensors"
STATE_FILE = "trainer_state.json"
ADAPTER_DIR = "adapter"


@dataclass(frozen=True)
class CheckpointState:
    """What `read_checkpoint` found."""

    step: int
    job_uid: str | None
    tensors: dict[str, torch.Tensor]


def write_checkpoint(
    directory: Path, step: int, job_uid: str, method: str, tensors: dict[str, torch.Tensor]
) -> Path:
    """Write the tensors and counters (the adapter is exported into `directory/adapter`)."""
    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {name: tensor.contiguous() for name, tensor in tensors.items()},
        str(directory / TRAINABLE_FILE),
    )
    state = {"step": step, "job_uid": job_uid, "method": method}
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2))
    return directory


def read_checkpoint(directory: Path) -> CheckpointState:
    """Read a checkpoint written by `write_checkpoint`."""
    state = json.loads((directory / STATE_FILE).read_text())
    return CheckpointState(
        step=int(state["step"]),
        job_uid=state.get("job_uid"),
        tensors=load_file(str(directory / TRAINABLE_FILE)),
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
