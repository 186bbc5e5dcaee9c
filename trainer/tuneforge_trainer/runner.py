"""`run_job(job, settings) -> TrainResult`: the whole journey of one FineTuneJob.

pre-flight checks → where workers put generated class images (DreamBooth) → the job's
MLflow run → Ray Train fit → the quality gate (the workers' final evaluation figures against
`output.promoteIf`) → register the last checkpoint's adapter as a model version (once per job
uid; `output.alias` moves only when the gate passes) → its model card → a full DreamBooth's
extracted LoRA (`dreambooth.extractLora`) as `<registeredModel>-lora` → result line.
The CLI (`python -m tuneforge_trainer run`) and the embedded runner both call this.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tuneforge.api import QUALITY_GATE_TAG, FineTuneJob, QualityGateVerdict, gate_verdict
from tuneforge.api.evaluation import grid_file
from tuneforge.contract import ADAPTER_ARTIFACT_PATH, AdapterManifest, Tag, format_result
from tuneforge.settings import Settings
from tuneforge.sigterm import raise_on_sigterm
from tuneforge_trainer.checkpoints import ADAPTER_DIR, STATE_FILE
from tuneforge_trainer.distributed import build_trainer, connect_ray, fit, storage_for
from tuneforge_trainer.export import read_manifest
from tuneforge_trainer.plan import WorkerPlan, job_uid
from tuneforge_trainer.preflight import preflight
from tuneforge_trainer.priors import class_images_uri
from tuneforge_trainer.progress import write_line
from tuneforge_trainer.tracking import RunTracker, find_or_create_run
from tuneforge_trainer.trainer_settings import TrainerSettings


@dataclass
class TrainResult:
    """What a finished job produced."""

    run_id: str
    model_name: str
    model_version: str
    steps: int
    job_uid: str
    manifest: dict[str, Any]
    quality_gate: str | None = None
    """The quality gate's verdict as JSON (`QualityGateVerdict.to_json`), when evaluated."""


def tracking_uri_for(settings: Settings) -> str:
    """The MLflow tracking URI: configured, or embedded mode's SQLite store."""
    if settings.mlflow_tracking_uri:
        return settings.mlflow_tracking_uri
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings.embedded_tracking_uri()


def quality_verdict(job: FineTuneJob, tracker: RunTracker) -> QualityGateVerdict | None:
    """The gate's verdict on the figures the workers logged (final step; base at step 0).

    None without `spec.evaluation`. A metric missing at the final step fails its minimum.
    """
    evaluation = job.spec.evaluation
    if evaluation is None:
        return None
    final_step = job.spec.training.max_steps
    final: dict[str, float] = {}
    base: dict[str, float] = {}
    for metric in evaluation.metrics:
        value = tracker.metric_at(metric.mlflow_key, final_step)
        if value is not None:
            final[metric.value] = value
        before = tracker.metric_at(metric.mlflow_key, 0)
        if before is not None:
            base[metric.value] = before
    return gate_verdict(final, job.spec.output.promote_if, base)


def register(
    settings: Settings,
    run_id: str,
    adapter_dir: Path,
    manifest: AdapterManifest,
    job: FineTuneJob,
    verdict: QualityGateVerdict | None = None,
    kept_at: str | None = None,
    *,
    model_name: str | None = None,
    artifact_path: str = ADAPTER_ARTIFACT_PATH,
    extra_tags: dict[str, str] | None = None,
    note: str | None = None,
) -> Any:
    """Register the adapter folder as a version of `output.registeredModel` (idempotent per uid).

    The version is always registered; `output.alias` moves to it only when `verdict` passed
    (or there is none). The version then gets its model card. `kept_at` is where the
    adapter stays when MLflow cannot be reached (the error names it). A derived adapter (the
    extracted LoRA) passes its own `model_name`, run `artifact_path`, `extra_tags` and a
    `note` that ends its description; its card shows no evaluation grids (they are the
    job's full weights').
    """
    from tuneforge.registry import AdapterRegistry
    from tuneforge.registry.register import (
        MODEL_CARD_ARTIFACT,
        attach_model_card,
        card_description,
        model_card,
    )

    output = job.spec.output
    tags = {Tag.JOB_NAME: job.name, Tag.JOB_UID: manifest.job_uid or "", **(extra_tags or {})}
    alias = output.alias if verdict is None or verdict.passed else None
    registry = AdapterRegistry(settings)
    registered = registry.register(
        run_id,
        adapter_dir,
        manifest,
        model_name or output.registered_model,
        alias=alias,
        tags=tags,
        kept_at=kept_at,
        artifact_path=artifact_path,
    )
    evaluation = job.spec.evaluation
    prompts = evaluation.prompts_for(job.spec.dataset.instance_prompt) if evaluation else []
    grids = [] if note else [grid_file(index) for index in range(len(prompts))]
    readme = model_card(registered.name, registered.version, manifest, job.spec, verdict, grids)
    if note:
        readme += f"\n{note}\n"
    description = card_description(manifest, verdict) + (f" {note}" if note else "")
    card_folder = MODEL_CARD_ARTIFACT
    if artifact_path != ADAPTER_ARTIFACT_PATH:  # a second version of this run: its own card
        card_folder = f"{artifact_path}-{MODEL_CARD_ARTIFACT}"
    attach_model_card(registry.store, registered, readme, description, verdict, card_folder)
    return registered


EXTRACTED_ARTIFACT_PATH = "extracted_lora"
"""The job run's artifact folder of the extracted LoRA's files (the full weights: `adapter`)."""
EXTRACTED_FROM_TAG = "tuneforge.extracted_from"
"""Version tag of an extracted LoRA: `name/version` of the full DreamBooth it came from."""
EXTRACTION_METRIC_PREFIX = "lora_extraction/"


def register_extracted_lora(
    settings: Settings,
    tracker: RunTracker,
    checkpoint_dir: Path,
    job: FineTuneJob,
    full: Any,
    verdict: QualityGateVerdict | None = None,
    kept_at: str | None = None,
) -> Any | None:
    """Log the extraction's report and register its LoRA as `<registeredModel>-lora`.

    The job run gets the summary metrics (`lora_extraction/relative_error_mean`, `…_max`,
    `…/rank`, …) at the final step and the per-layer report (`lora_extraction/layers.json`,
    `layers.csv`). The LoRA becomes a version of `extracted_model_name(registeredModel)`,
    tagged with the full weights' `name/version`; `output.alias` moves with the same gate as
    the full weights', and it gets a model card like every version (`register`). None when
    the checkpoint holds no extracted LoRA.
    """
    from tuneforge.api import extracted_model_name
    from tuneforge_trainer.extract_lora import (
        EXTRACTED_LORA_DIR,
        EXTRACTION_REPORT_DIR,
        read_summary,
    )

    folder = checkpoint_dir / EXTRACTED_LORA_DIR
    if not folder.is_dir():
        return None
    manifest = read_manifest(folder)
    report = checkpoint_dir / EXTRACTION_REPORT_DIR
    summary = read_summary(report)
    tracker.log_metrics(
        {f"{EXTRACTION_METRIC_PREFIX}{key}": value for key, value in summary.items()},
        manifest.steps,
    )
    tracker.log_artifacts(report, EXTRACTION_REPORT_DIR)
    source = f"{full.name}/{full.version}"
    lora = manifest.lora
    assert lora is not None
    note = (
        f"LoRA (rank {lora.rank}) extracted by SVD from the full DreamBooth {source}; "
        f"relative reconstruction error mean {summary['relative_error_mean']:.4f}, "
        f"max {summary['relative_error_max']:.4f} over {int(summary['layers_extracted'])} "
        f"layers; {int(summary['layers_left_out'])} trained weights left out "
        f"({summary['left_out_energy_fraction']:.1%} of the change): see {EXTRACTION_REPORT_DIR}/"
    )
    return register(
        settings,
        tracker.run_id,
        folder,
        manifest,
        job,
        verdict,
        kept_at,
        model_name=extracted_model_name(job.spec.output.registered_model),
        artifact_path=EXTRACTED_ARTIFACT_PATH,
        extra_tags={EXTRACTED_FROM_TAG: source},
        note=note,
    )


def run_job(
    job: FineTuneJob,
    settings: Settings | None = None,
    *,
    trainer_settings: TrainerSettings | None = None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Check, train on Ray, register; returns the MLflow run and the registered version."""
    settings = settings or Settings()
    trainer_settings = trainer_settings or TrainerSettings()
    from tuneforge.registry.retry import apply_mlflow_http_settings

    apply_mlflow_http_settings(settings)  # every MLflow call below is bounded, not only register
    uid = job_uid(job)
    tracking_uri = tracking_uri_for(settings)
    checkpoint_uri = trainer_settings.checkpoints(settings)
    cache_dir = trainer_settings.cache_dir(settings)
    preflight(job, settings, tracking_uri, checkpoint_uri, cache_dir)

    run_id = find_or_create_run(tracking_uri, job, uid, settings)
    tracker = RunTracker(tracking_uri, run_id, settings)
    resources = job.spec.resources
    plan = WorkerPlan(
        job=job.to_manifest(),
        job_uid=uid,
        model_uri=job.spec.base_model.uri,
        dataset_uri=job.spec.dataset.uri,
        class_data_uri=job.spec.dataset.class_data_uri,
        class_images_uri=class_images_uri(job, checkpoint_uri),
        cache_dir=str(cache_dir),
        tracking_uri=tracking_uri,
        run_id=run_id,
        threads=resources.cpus_per_worker,
        zero_stage=trainer_settings.deepspeed_zero_stage,
    )
    started_ray = connect_ray(settings, resources.workers * resources.cpus_per_worker)
    if started_ray:  # ray.init made SIGTERM abort; stop as Ctrl-C does instead
        raise_on_sigterm()
    storage_path, filesystem = storage_for(checkpoint_uri, settings)
    trainer = build_trainer(
        job, plan, storage_path, filesystem, trainer_settings.trainer_max_failures, callbacks
    )
    try:
        result = fit(trainer)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop the workers and the Ray started here
        tracker.finish("KILLED")
        if started_ray:
            import ray

            ray.shutdown()
        raise
    except Exception:
        tracker.finish("FAILED")
        raise
    with tempfile.TemporaryDirectory(prefix="tuneforge-final-") as tmp:
        local = Path(result.checkpoint.to_directory(str(Path(tmp) / "checkpoint")))
        if not (local / STATE_FILE).is_file():
            raise FileNotFoundError(f"checkpoint {result.checkpoint.path} has no {STATE_FILE}")
        manifest = read_manifest(local / ADAPTER_DIR)
        verdict = quality_verdict(job, tracker)
        if verdict is not None:
            tracker.set_tag(QUALITY_GATE_TAG, verdict.to_json())
        kept_at = f"{result.checkpoint.path}/{ADAPTER_DIR}"
        registered = register(
            settings, run_id, local / ADAPTER_DIR, manifest, job, verdict, kept_at=kept_at
        )
        register_extracted_lora(
            settings, tracker, local, job, registered, verdict, kept_at=str(result.checkpoint.path)
        )
    tracker.set_tag(Tag.MODEL_VERSION, str(registered.version))
    tracker.finish("FINISHED")
    outcome = TrainResult(
        run_id=run_id,
        model_name=str(registered.name),
        model_version=str(registered.version),
        steps=manifest.steps,
        job_uid=uid,
        manifest=manifest.model_dump(mode="json"),
        quality_gate=verdict.to_json() if verdict is not None else None,
    )
    write_line(format_result(**{k: v for k, v in asdict(outcome).items() if k != "manifest"}))
    return outcome
