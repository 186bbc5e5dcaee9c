"""Evaluation on a training worker, with the modules it holds, on its own device.

`WorkerEvaluation.evaluate(step)` renders every evaluation prompt `imagesPerPrompt` times
(prompt i with seed `seed + i`) with the live text encoder and UNet, as validation does, then
embeds the images with the evaluator models and computes the paper's metrics against the real
subject images. Step 0 runs before the first training step: the images are the base model's
(a fresh LoRA adds zero), kept as every later grid's "before" row, and its metrics are the
baseline. Rank 0 logs to MLflow: `eval/<metric>` at the step, one grid per prompt through
`log_image` (key `eval/prompt<i>`, the UI's image slider), the prompts once, and the final
grids as plain files for the model card.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tuneforge.api import EvalMetric, FineTuneJobSpec
from tuneforge.api.evaluation import GRIDS_ARTIFACT, grid_file
from tuneforge.settings import Settings
from tuneforge_trainer.components import Components
from tuneforge_trainer.data import instance_root, read_records
from tuneforge_trainer.evaluation.grids import prompt_grid
from tuneforge_trainer.evaluation.metrics import prompt_fidelity, subject_fidelity
from tuneforge_trainer.evaluation.models import Evaluators, load_evaluators
from tuneforge_trainer.strategies import TrainingStrategy, World
from tuneforge_trainer.validation import (
    gathered_root,
    params_sharded,
    pipeline_from_modules,
    rendering,
)

if TYPE_CHECKING:
    from tuneforge_trainer.methods.base import TrainingMethod
    from tuneforge_trainer.tracking import RunTracker


def real_images(dataset_dir: Path) -> list[Any]:
    """The subject's real images (the dataset's instance images) as RGB PIL images."""
    from PIL import Image

    images = []
    for record in read_records(instance_root(dataset_dir)):
        with Image.open(record.path) as opened:
            images.append(opened.convert("RGB"))
    if not images:
        raise ValueError(f"evaluation needs the subject's real images: none in {dataset_dir}")
    return images


def compute_metrics(
    evaluators: Evaluators,
    metrics: list[EvalMetric],
    generated: list[Any],
    prompts: list[str],
    real: list[Any],
) -> dict[str, float]:
    """The requested metrics of `generated` (image i made from `prompts[i]`) against `real`."""
    values: dict[str, float] = {}
    if EvalMetric.DINO in metrics:
        values[EvalMetric.DINO.value] = subject_fidelity(
            evaluators.dino_embeddings(generated), evaluators.dino_embeddings(real)
        )
    if EvalMetric.CLIP_I in metrics or EvalMetric.CLIP_T in metrics:
        images = evaluators.clip_image_embeddings(generated)
        if EvalMetric.CLIP_I in metrics:
            values[EvalMetric.CLIP_I.value] = subject_fidelity(
                images, evaluators.clip_image_embeddings(real)
            )
        if EvalMetric.CLIP_T in metrics:
            values[EvalMetric.CLIP_T.value] = prompt_fidelity(
                images, evaluators.clip_text_embeddings(prompts)
            )
    return values


class WorkerEvaluation:
    """One worker's evaluation state: evaluator models, real images, the "before" images."""

    def __init__(
        self,
        spec: FineTuneJobSpec,
        method: TrainingMethod,
        dataset_dir: Path,
        cache_dir: Path,
        settings: Settings,
        world: World,
        tracker: RunTracker | None,
    ):
        """Load the evaluator models and the real images (rank 0 only: the others just render).

        Default prompts take their subject from `method.evaluation_instance_prompt()` (a
        textual inversion's placeholder token), and each prompt is rendered as the method's
        text encoder reads it (`method.expand_prompt`)."""
        assert spec.evaluation is not None
        self.spec = spec
        self.evaluation = spec.evaluation
        self.prompts = spec.evaluation.prompts_for(method.evaluation_instance_prompt())
        self.expand = method.expand_prompt
        self.world = world
        self.tracker = tracker
        self.before: list[list[Any]] = []
        self.evaluators: Evaluators | None = None
        self.real: list[Any] = []
        if world.is_main:
            self.evaluators = load_evaluators(self.evaluation, cache_dir, settings, world.device)
            self.real = real_images(dataset_dir)

    def due(self, step: int, final_step: int) -> bool:
        """Before training (step 0), at the end, and at validation steps when asked."""
        every = self.spec.validation.every_steps
        at_validation = self.evaluation.at_validation_steps and every and step % every == 0
        return step in (0, final_step) or bool(at_validation)

    def render(self, strategy: TrainingStrategy, components: Components) -> list[list[Any]]:
        """Every prompt's images with the live modules (all ranks when parameters are sharded)."""
        model: Any = strategy.unwrapped()
        if not (self.world.is_main or params_sharded(model)):
            return []
        pipe = pipeline_from_modules(components, model.text_encoder, model.unet)
        resolution = self.spec.dataset.resolution
        per_prompt = []
        modules = [model, components.vae]
        with rendering(modules, self.spec.training, self.world.device), gathered_root(model):
            for index, prompt in enumerate(self.prompts):
                generator = torch.Generator().manual_seed(self.evaluation.seed + index)
                result = pipe(
                    self.expand(prompt),
                    num_inference_steps=self.evaluation.steps,
                    guidance_scale=self.evaluation.guidance_scale,
                    num_images_per_prompt=self.evaluation.images_per_prompt,
                    height=resolution,
                    width=resolution,
                    generator=generator,
                )
                per_prompt.append(list(result.images))
        return per_prompt

    def evaluate(
        self, strategy: TrainingStrategy, components: Components, step: int, final: bool
    ) -> dict[str, float]:
        """Render, measure and (rank 0) log at `step`; returns the metrics (empty off rank 0)."""
        per_prompt = self.render(strategy, components)
        if not self.world.is_main or self.evaluators is None:
            return {}
        if step == 0:
            self.before = per_prompt
        generated = [image for images in per_prompt for image in images]
        prompts = [p for p, images in zip(self.prompts, per_prompt, strict=True) for _ in images]
        values = compute_metrics(
            self.evaluators, self.evaluation.metrics, generated, prompts, self.real
        )
        if self.tracker is not None:
            self._log(values, per_prompt, step, final)
        return values

    def _log(
        self, values: dict[str, float], per_prompt: list[list[Any]], step: int, final: bool
    ) -> None:
        assert self.tracker is not None
        self.tracker.log_metrics({EvalMetric(k).mlflow_key: v for k, v in values.items()}, step)
        grids = []
        for index, images in enumerate(per_prompt):
            before = self.before[index] if step > 0 and index < len(self.before) else []
            grid = prompt_grid([before, images])
            self.tracker.log_image(grid, f"eval/prompt{index:02d}", step)
            grids.append(grid)
        if final:
            with tempfile.TemporaryDirectory(prefix="tuneforge-eval-") as tmp:
                folder = Path(tmp)
                for index, grid in enumerate(grids):
                    grid.save(folder / grid_file(index))
                (folder / "prompts.txt").write_text("\n".join(self.prompts) + "\n")
                self.tracker.log_artifacts(folder, GRIDS_ARTIFACT)
