"""tuneforge_trainer: LoRA, DreamBooth and Textual Inversion on Ray Train.

`run_job(job, settings) -> TrainResult` runs one FineTuneJob end to end (also
`python -m tuneforge_trainer run --job FILE|-`); `loop.train_worker` is the per-worker loop.
Heavy imports (torch, diffusers, ray) happen on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuneforge_trainer.runner import TrainResult, run_job

__all__ = ["TrainResult", "run_job"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tuneforge_trainer import runner

        return getattr(runner, name)
    raise AttributeError(name)
