"""The per-worker training loop, the same for every method and strategy.

`train_worker(plan, context)` runs on each Ray Train worker (or alone, world size 1, in
tests): load the base model, let the method prepare it, resume from the latest checkpoint,
wrap it with the strategy, evaluate the base (step 0, when `spec.evaluation` is set), then
step, log, checkpoint, validate and evaluate until `maxSteps`.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tuneforge.api import FineTuneJob
from tuneforge.base_model import resolve_base_model
from tuneforge.contract import Metric
from tuneforge.inputs import materialize
from tuneforge.settings import Settings
from tuneforge_trainer.batches import LatentEncoder, micro_batch_loss, micro_batches
from tuneforge_trainer.checkpoints import (
    ADAPTER_DIR,
    read_checkpoint,
    restore_trainable,
    write_checkpoint,
)
from tuneforge_trainer.components import load_components
from tuneforge_trainer.context import WorkerContext
from tuneforge_trainer.data import ExampleSource, instance_root, read_records
from tuneforge_trainer.export import export_adapter, export_extracted_lora
from tuneforge_trainer.methods import TrainingMethod, build_method
from tuneforge_trainer.param_groups import build_adamw, gate_schedule
from tuneforge_trainer.plan import WorkerPlan
from tuneforge_trainer.progress import ProgressPrinter
from tuneforge_trainer.strategies import TrainingStrategy, build_strategy
from tuneforge_trainer.tracking import RunTracker


@dataclass
class WorkerOutcome:
    """What one worker did."""

    start_step: int
    final_step: int
    last_loss: float | None


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (the same on every rank, so initialisations agree)."""
    from accelerate.utils import set_seed

    set_seed(seed)


def step_generator(seed: int, rank: int, step: int, micro: int) -> torch.Generator:
    """The noise/timestep generator of one micro-batch: reproducible across resumes."""
    return torch.Generator().manual_seed(hash((seed, rank, step, micro)) & 0x7FFF_FFFF_FFFF)


def build_sources(
    method: TrainingMethod, dataset_dir: Path, class_dir: Path | None, seed: int
) -> tuple[ExampleSource, ExampleSource | None]:
    """Instance images with their prompts, and class images when prior preservation is on."""
    dataset = method.spec.dataset
    records = read_records(instance_root(dataset_dir))
    prompts = [method.prompt_for(record.caption) for record in records]
    instance = ExampleSource(
        records, prompts, dataset.resolution, dataset.center_crop, dataset.random_flip, seed
    )
    classes = None
    if method.uses_prior_preservation:
        if class_dir is None:
            raise ValueError("prior preservation needs class images (dataset.classDataUri)")
        class_records = read_records(class_dir)[: dataset.num_class_images]
        class_prompt = dataset.class_prompt or ""
        classes = ExampleSource(
            class_records,
            [class_prompt] * len(class_records),
            dataset.resolution,
            dataset.center_crop,
            dataset.random_flip,
            seed + 1,
        )
    return instance, classes


def make_lr_scheduler(
    job: FineTuneJob,
    optimizer: torch.optim.Optimizer,
    start: int,
    group_starts: list[int] | None = None,
) -> Any:
    """diffusers' `get_scheduler` with warm-up, starting at step `start` (a resume).

    Built with `last_epoch=start - 1`: the schedule starts where `start` steps left it without
    stepping the optimizer (an fp16 `GradScaler.step` before any scaled backward raises).
    The optimizer's groups need `initial_lr` (see `mark_initial_lr`). `group_starts`: per
    param group, the steps its learning rate stays 0 (`ParamGroup.starts_at_step`).
    """
    from diffusers.optimization import get_scheduler

    training = job.spec.training
    scheduler = get_scheduler(
        training.lr_scheduler.value,
        optimizer=optimizer,
        num_warmup_steps=training.lr_warmup_steps,
        num_training_steps=training.max_steps,
        last_epoch=start - 1,
    )
    return gate_schedule(scheduler, group_starts or [0] * len(optimizer.param_groups))


def mark_initial_lr(optimizer: torch.optim.Optimizer) -> None:
    """Give each param group the `initial_lr` a schedule keeps (and a saved state holds)."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])


class _Trainer:
    """State of one worker's run (split from `train_worker` to keep each step readable)."""

    def __init__(self, plan: WorkerPlan, context: WorkerContext, settings: Settings):
        self.plan = plan
        self.context = context
        self.world = context.world
        self.job = plan.load_job()
        self.spec = self.job.spec
        self.settings = settings
        self.tracker = (
            RunTracker(plan.tracking_uri, plan.run_id, settings)
            if self.world.is_main and plan.tracking_uri and plan.run_id
            else None
        )

    def setup(self) -> None:
        torch.set_num_threads(self.plan.threads)
        cache = self.plan.cache_path
        base = self.spec.base_model
        self.model_dir = resolve_base_model(
            self.plan.model_uri, cache, self.settings, revision=base.revision, variant=base.variant
        ).path
        dataset_dir = materialize(self.plan.dataset_uri, cache, self.settings)
        training = self.spec.training
        seed_everything(training.seed)
        components = load_components(self.model_dir)
        from tuneforge_trainer.priors import class_image_tags, class_images_on_worker

        priors = class_images_on_worker(
            self.plan, self.world, components, dataset_dir, self.settings
        )
        class_dir = priors.folder if priors is not None else None
        if priors is not None and self.tracker is not None:
            for tag, value in class_image_tags(priors).items():
                self.tracker.set_tag(tag, value)
        self.method = build_method(self.spec, components)
        self.method.prepare()
        if training.gradient_checkpointing:
            self.method.enable_gradient_checkpointing()
        model = self.method.denoiser()
        self.param_groups = self.method.param_groups(self.method.trainable_names(model))
        # In group order: the optimizer numbers its parameters group by group, and its saved
        # state names them by position in this list.
        self.trainable = [name for group in self.param_groups for name in group.names]
        self.start_step = 0
        saved = None
        with self.context.latest_checkpoint() as directory:
            if directory is not None:
                saved = read_checkpoint(directory)
                restore_trainable(model, saved.tensors)
                self.start_step = saved.step
        device = self.world.device
        model.to(device)
        components.vae.to(device)
        self.strategy: TrainingStrategy = build_strategy(
            self.spec.resources.strategy,
            self.world,
            training,
            full_model=self.method.trains_full_model,
            zero_stage=self.plan.zero_stage,
        )
        self.strategy.setup(model, self.trainable, self._optimizer)
        assert self.strategy.optimizer is not None
        mark_initial_lr(self.strategy.optimizer)
        if saved is not None:
            self.strategy.restore_masters(saved.tensors)
            self.strategy.load_scaler_state(saved.loss_scaler)
            if saved.optimizer is not None:
                self.strategy.load_optimizer_state(self.trainable, saved.optimizer)
        self.lr_scheduler = make_lr_scheduler(
            self.job,
            self.strategy.optimizer,
            self.start_step,
            [group.starts_at_step for group in self.param_groups],
        )
        self.instance, self.classes = build_sources(
            self.method, dataset_dir, class_dir, training.seed
        )
        cacheable = training.cache_latents and self.instance.deterministic_pixels
        self.encoder = LatentEncoder(components, device, cacheable)
        self.evaluation = None
        if self.spec.evaluation is not None:
            from tuneforge_trainer.evaluation import WorkerEvaluation

            self.evaluation = WorkerEvaluation(
                self.spec, self.method, dataset_dir, cache, self.settings, self.world, self.tracker
            )

    def _optimizer(self, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """AdamW over the method's parameter groups (`params` in `self.trainable` order)."""
        return build_adamw(self.param_groups, self.trainable, params)

    def run(self) -> WorkerOutcome:
        training = self.spec.training
        accumulation = training.gradient_accumulation_steps
        batches = micro_batches(
            self.instance,
            self.classes,
            training.batch_size,
            self.world.rank,
            self.world.world_size,
            skip=self.start_step * accumulation,
        )
        printer = ProgressPrinter(training.max_steps, self.start_step)
        images_per_step = training.batch_size * accumulation * self.world.world_size
        last_loss: float | None = None
        last_saved = -1
        if self.start_step == 0:
            self.maybe_evaluate(0)
        for step in range(self.start_step + 1, training.max_steps + 1):
            started = time.perf_counter()
            losses = []
            for micro in range(accumulation):
                boundary = micro == accumulation - 1
                generator = step_generator(training.seed, self.world.rank, step, micro)
                with self.strategy.accumulating(boundary):
                    loss = micro_batch_loss(
                        self.strategy.forward, self.method, self.encoder, next(batches), generator
                    )
                    self.strategy.backward(loss)
                self.strategy.after_backward(boundary)
                losses.append(float(loss.detach()))
            lr = float(self.lr_scheduler.get_last_lr()[0])
            self.lr_scheduler.step()
            last_loss = sum(losses) / len(losses)
            images_per_s = images_per_step / max(time.perf_counter() - started, 1e-9)
            metrics = {
                Metric.STEP: step,
                Metric.LOSS: last_loss,
                Metric.LEARNING_RATE: lr,
                Metric.IMAGES_PER_S: images_per_s,
            }
            if self.world.is_main:
                printer.step(step, last_loss, lr, images_per_s)
                if self.tracker is not None:
                    self.tracker.log_metrics(metrics, step)
            if step % training.checkpoint_every_steps == 0 or step == training.max_steps:
                self.checkpoint(step, metrics)
                last_saved = step
            self.maybe_validate(step)
            self.maybe_evaluate(step)
        if last_saved != training.max_steps:
            # Resumed at maxSteps (a rerun of a finished job): report the final state again,
            # and measure it again (an attempt may have died while evaluating).
            self.checkpoint(training.max_steps, {Metric.STEP: training.max_steps})
            self.maybe_evaluate(training.max_steps)
        return WorkerOutcome(self.start_step, training.max_steps, last_loss)

    def checkpoint(self, step: int, metrics: dict[str, Any]) -> None:
        """Collective: gather the trained tensors; rank 0 writes and reports the checkpoint."""
        state = self.strategy.full_state_dict(self.trainable)
        optimizer = self.strategy.optimizer_state(self.trainable)
        loss_scaler = self.strategy.scaler_state()
        if not self.world.is_main:
            self.context.report(metrics, None)
            return
        final = step == self.spec.training.max_steps  # the export that is registered
        with tempfile.TemporaryDirectory(prefix="tuneforge-ckpt-") as tmp:
            directory = Path(tmp)
            write_checkpoint(
                directory,
                step,
                self.plan.job_uid,
                self.spec.method.value,
                state,
                optimizer,
                loss_scaler,
            )
            export_adapter(
                self.method,
                state,
                directory / ADAPTER_DIR,
                self.job,
                self.plan.job_uid,
                step,
                final=final,
            )
            if final:
                export_extracted_lora(
                    self.method, state, directory, self.job, self.plan.job_uid, step
                )
            self.context.report(metrics, directory)

    def maybe_validate(self, step: int) -> None:
        """Every `validation.everySteps` and at the end: render prompts, log to MLflow."""
        validation = self.spec.validation
        if not validation.prompts:
            return
        due = step == self.spec.training.max_steps or (
            validation.every_steps and step % validation.every_steps == 0
        )
        if not due:
            return
        from tuneforge_trainer.validation import validate_on_worker

        validate_on_worker(
            self.strategy, self.method.components, self.world, self.spec, step, self.tracker
        )

    def maybe_evaluate(self, step: int) -> None:
        """Before training, at the end and (when asked) at validation steps: DINO, CLIP-I, CLIP-T."""
        final_step = self.spec.training.max_steps
        if self.evaluation is None or not self.evaluation.due(step, final_step):
            return
        self.evaluation.evaluate(
            self.strategy, self.method.components, step, final=step == final_step
        )


def train_worker(
    plan: WorkerPlan, context: WorkerContext, settings: Settings | None = None
) -> WorkerOutcome:
    """Train on this worker until `maxSteps`, resuming from the context's latest checkpoint."""
    trainer = _Trainer(plan, context, settings or Settings())
    trainer.setup()
    return trainer.run()


def ray_worker_entry(config: dict[str, Any]) -> None:
    """`train_loop_per_worker` for Ray Train's `TorchTrainer`."""
    from tuneforge_trainer.context import RayContext

    train_worker(WorkerPlan.model_validate(config), RayContext())
