"""The TuneForge side of the training benchmarks: the LoRA job both loops train."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def lora_bench_job(
    name: str,
    model_dir: Path,
    dataset_dir: Path,
    *,
    resolution: int,
    steps: int,
    batch_size: int,
    learning_rate: float,
    rank: int,
    cpus: int,
    **training: Any,
) -> Any:
    """A LoRA FineTuneJob checkpointing once at its last step; `training` adds camelCase keys."""
    from tuneforge.api import load_job

    return load_job(
        {
            "metadata": {"name": name},
            "spec": {
                "method": "lora",
                "baseModel": {"uri": str(model_dir)},
                "dataset": {"uri": str(dataset_dir), "resolution": resolution},
                "training": {
                    "maxSteps": steps,
                    "batchSize": batch_size,
                    "learningRate": learning_rate,
                    "checkpointEverySteps": steps,
                    **training,
                },
                "lora": {"rank": rank, "alpha": rank},
                "resources": {"workers": 1, "gpusPerWorker": 0, "cpusPerWorker": cpus},
                "output": {"registeredModel": name},
            },
        }
    )
