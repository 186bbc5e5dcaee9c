"""The precision matrix's worker side: two gloo processes train every cell in turn.

`run_matrix(cells, model_dir, dataset_dir, root)` spawns two processes (one gloo group,
imports paid once) that train each (strategy, precision) cell: a fresh 2-step LoRA run
with a checkpoint every step, then a run resumed from the fresh run's step-1 checkpoint.
Each process records what it saw (cross-attention output dtypes in the forward, the
strategy object that trained: its wrapper, shards, ZeRO partitions, loss scaler) and writes
`root/rank<r>-results.json`: {"<strategy>-<precision>": {"refused": msg} | {"fresh": ...,
"resumed": ...}, with the checkpoint folders of both runs and the wall and CPU seconds}.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

from tests.fixtures.two_ranks import (
    EXTENSIONS,
    WORLD_SIZE,
    join_gloo_group,
    spawn_two_ranks,
    strategies_built,
)

RESULTS = "results.json"


def cell_key(strategy: str, precision: str) -> str:
    """The results key of one cell."""
    return f"{strategy}-{precision}"


def _sharding(strategy: Any, trainable: list[str]) -> dict[str, Any]:
    """How the strategy that trained holds the model (read on each rank)."""
    named = dict(strategy.unwrapped().named_parameters())
    params = [named[name] for name in trainable]
    info: dict[str, Any] = {
        "strategy": strategy.name,
        "wrapper": type(strategy.model).__name__,
        "trainable_numel": sum(p.numel() for p in params),
    }
    if strategy.name == "fsdp":
        info["param_types"] = sorted({type(p).__name__ for p in params})
        info["local_numel"] = sum(p.to_local().numel() for p in params)
    if strategy.name == "deepspeed":
        info["zero_stage"] = strategy.engine.zero_optimization_stage()
        partitions = strategy.engine.optimizer.single_partition_of_fp32_groups
        info["master_partition_numel"] = sum(t.numel() for t in partitions)
        info["master_dtype"] = str(partitions[0].dtype)
        info["module_dtype"] = str(params[0].dtype)
    scaler = strategy.precision.scaler
    if scaler is not None:
        info["scaler"] = {
            "class": type(scaler).__name__,
            "scale": scaler.get_scale(),
            "growth_tracker": int(scaler._growth_tracker),
        }
    return info


def _train(job: Any, storage: Path, rank: int) -> dict[str, Any]:
    """One `train_worker` run on this rank, recording attention dtypes and the strategy."""
    import math

    import torch

    import tuneforge_trainer.loop as loop
    from tests.fixtures.trainer import worker_plan
    from tuneforge_trainer.context import LocalContext
    from tuneforge_trainer.strategies import World

    dtypes: set[str] = set()

    def attention_hook(module: Any, _inputs: Any, output: Any) -> None:
        if type(module).__name__ == "Attention" and getattr(module, "is_cross_attention", False):
            dtypes.add(str(output.dtype))

    context = LocalContext(storage / "checkpoints")
    context.world = World(rank=rank, world_size=WORLD_SIZE)
    handle = torch.nn.modules.module.register_module_forward_hook(attention_hook)
    try:
        with strategies_built() as built:
            outcome = loop.train_worker(worker_plan(job, storage), context)
    finally:
        handle.remove()
    strategy = built[0]
    trainable = [n for n, p in strategy.unwrapped().named_parameters() if p.requires_grad]
    return {
        "start_step": outcome.start_step,
        "final_step": outcome.final_step,
        "last_loss": outcome.last_loss,
        "loss_finite": outcome.last_loss is not None and math.isfinite(outcome.last_loss),
        "attention_dtypes": sorted(dtypes),
        "held": _sharding(strategy, trainable),
        "checkpoints": str(storage / "checkpoints"),
    }


def _cell(strategy: str, precision: str, paths: dict[str, str], rank: int) -> dict[str, Any]:
    import torch.distributed as dist

    from tests.fixtures.trainer import make_trainer_job

    root = Path(paths["root"]) / cell_key(strategy, precision)
    job = make_trainer_job(
        "lora",
        paths["model_dir"],
        paths["dataset_dir"],
        name=cell_key(strategy, precision),
        resources={"strategy": strategy, "workers": WORLD_SIZE},
        training={"mixedPrecision": precision, "maxSteps": 2, "checkpointEverySteps": 1},
    )
    try:
        fresh = _train(job, root / "fresh", rank)
    except ValueError as error:
        return {"refused": str(error)}
    dist.barrier()
    if rank == 0:
        first = Path(fresh["checkpoints"]) / "checkpoint_00000001"
        shutil.copytree(first, root / "resumed" / "checkpoints" / first.name)
    dist.barrier()
    return {"fresh": fresh, "resumed": _train(job, root / "resumed", rank)}


def _process(rank: int, cells: list[tuple[str, str]], paths: dict[str, str], port: int) -> None:
    import torch.distributed as dist

    join_gloo_group(rank, paths["root"], port)
    results: dict[str, Any] = {}
    for strategy, precision in cells:
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            result = _cell(strategy, precision, paths, rank)
        except Exception:  # recorded per cell: the test of that cell reports it
            result = {"error": traceback.format_exc()}
        result["seconds"] = round(time.perf_counter() - started, 2)
        result["cpu_seconds"] = round(time.process_time() - cpu_started, 2)
        results[cell_key(strategy, precision)] = result
    extensions = Path(paths["root"]) / EXTENSIONS
    results["compiled_ops"] = (
        sorted(p.name for p in extensions.glob("*/*")) if extensions.exists() else []
    )
    out = Path(paths["root"]) / f"rank{rank}-{RESULTS}"
    out.write_text(json.dumps(results, indent=2))
    dist.destroy_process_group()


def run_matrix(
    cells: list[tuple[str, str]], model_dir: Path, dataset_dir: Path, root: Path, timeout_s: float
) -> dict[int, dict[str, Any]]:
    """Train every cell on two spawned gloo processes; returns each rank's results."""
    paths = {"root": str(root), "model_dir": str(model_dir), "dataset_dir": str(dataset_dir)}
    spawn_two_ranks(_process, (cells, paths), root, timeout_s, "precision matrix")
    return {
        rank: json.loads((root / f"rank{rank}-{RESULTS}").read_text()) for rank in range(WORLD_SIZE)
    }
