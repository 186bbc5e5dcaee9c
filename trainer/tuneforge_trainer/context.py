"""Where a worker runs: under Ray Train, or alone in this process (tests, benchmarks).

The loop only talks to a `WorkerContext`: its place in the world, the checkpoint to resume
from, and `report(metrics, checkpoint_dir)`. `RayContext` maps these to `ray.train`;
`LocalContext` keeps checkpoints in a folder, as Ray Train's local storage would.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from tuneforge.contract import Metric
from tuneforge_trainer.strategies import World


class WorkerContext(Protocol):
    """What the training loop needs from its runtime."""

    world: World

    def latest_checkpoint(self) -> AbstractContextManager[Path | None]:
        """The newest checkpoint folder of this run, or None on a fresh start."""
        ...

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        """Report metrics (every rank) and a checkpoint folder (rank 0 only, else None)."""
        ...


class LocalContext:
    """One process, world size 1; checkpoints copied to `storage/checkpoint_<step>`."""

    def __init__(self, storage: Path):
        """Keep checkpoints under `storage`."""
        self.world = World()
        self.storage = storage
        self.reports: list[dict[str, Any]] = []

    def checkpoints(self) -> list[Path]:
        """Saved checkpoint folders, oldest first."""
        found = [p for p in self.storage.glob("checkpoint_*") if p.is_dir()]
        return sorted(found, key=lambda p: int(p.name.split("_")[-1]))

    @contextmanager
    def _latest(self) -> Iterator[Path | None]:
        found = self.checkpoints()
        yield found[-1] if found else None

    def latest_checkpoint(self) -> AbstractContextManager[Path | None]:
        """The newest saved checkpoint."""
        return self._latest()

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        """Record metrics; copy the checkpoint into storage."""
        self.reports.append(dict(metrics))
        if checkpoint_dir is not None:
            target = self.storage / f"checkpoint_{int(metrics[Metric.STEP]):08d}"
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(checkpoint_dir, target)


class RayContext:
    """A Ray Train worker (V2 API)."""

    def __init__(self) -> None:
        """Read rank, world size and device from `ray.train`."""
        import ray.train
        import ray.train.torch

        context = ray.train.get_context()
        self.world = World(
            rank=context.get_world_rank(),
            world_size=context.get_world_size(),
            local_rank=context.get_local_rank(),
            device=ray.train.torch.get_device(),
        )

    @contextmanager
    def _latest(self) -> Iterator[Path | None]:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as directory:
            yield Path(directory)

    def latest_checkpoint(self) -> AbstractContextManager[Path | None]:
        """`ray.train.get_checkpoint()` as a local folder."""
        return self._latest()

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        """`ray.train.report` (every rank calls it; only rank 0 passes a checkpoint)."""
        import ray.train
        from ray.train import Checkpoint

        checkpoint = Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)
