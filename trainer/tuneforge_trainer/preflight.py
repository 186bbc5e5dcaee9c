"""Bad input fails fast, before any accelerator time, with one message naming what and where.

Checked on the driver before Ray starts a worker: S3 credentials and reachability (when any
URI or the checkpoint storage is on S3), MLflow reachability, the dataset (empty, unreadable
or corrupt images, images smaller than the resolution, missing captions), the base model's
parts, and the method's own settings (`TrainingMethod.preflight`: LoRA target modules
against the UNet built from its config, textual-inversion tokens).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tuneforge.api import FineTuneJob
from tuneforge.inputs import materialize
from tuneforge.settings import Settings
from tuneforge.storage import is_s3_uri
from tuneforge_trainer.data import inspect_images, instance_root, list_images, read_records
from tuneforge_trainer.errors import InvalidTrainingInput, ServiceUnavailable
from tuneforge_trainer.methods import method_class

MAX_LISTED = 10


@dataclass(frozen=True)
class PreparedInputs:
    """Local folders of the checked inputs."""

    model_dir: Path
    dataset_dir: Path


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def check_s3(job: FineTuneJob, settings: Settings, checkpoint_uri: str) -> None:
    """S3 credentials exist and the endpoint answers, when anything lives on S3."""
    spec = job.spec
    fields = {
        "spec.baseModel.uri": spec.base_model.uri,
        "spec.dataset.uri": spec.dataset.uri,
        "spec.dataset.classDataUri": spec.dataset.class_data_uri or "",
        "TUNEFORGE_CHECKPOINT_URI": checkpoint_uri,
    }
    on_s3 = [name for name, uri in fields.items() if is_s3_uri(uri)]
    if not on_s3:
        return
    missing = settings.missing_s3_settings()
    if missing:
        raise InvalidTrainingInput(
            f"{', '.join(on_s3)} on S3 but S3 credentials are missing: set {', '.join(missing)} "
            "in the trainer's environment (a Secret), never in the FineTuneJob"
        )
    from tuneforge.storage import check_reachable

    try:
        check_reachable(settings)
    except Exception as error:  # StorageError or ConfigurationError, already worded
        raise ServiceUnavailable(str(error)) from error


def check_mlflow(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """An HTTP tracking server answers `/health` (file and SQLite stores need no check)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            if response.status < 500:
                return
    except urllib.error.HTTPError as error:
        if error.code < 500:
            return
    except (urllib.error.URLError, OSError) as error:
        raise ServiceUnavailable(
            f"MLflow at {tracking_uri} is unreachable ({error}): is the server running and "
            "TUNEFORGE_MLFLOW_TRACKING_URI right?"
        ) from error
    raise ServiceUnavailable(f"MLflow at {tracking_uri} answered an error on /health")


def check_dataset(job: FineTuneJob, dataset_dir: Path) -> None:
    """Images exist, decode, are large enough, and each has a prompt."""
    dataset = job.spec.dataset
    folder = instance_root(dataset_dir)
    images = list_images(folder)
    if not images:
        raise InvalidTrainingInput(
            f"spec.dataset.uri {dataset.uri}: no images found (looked for .png/.jpg/.jpeg/"
            f".webp/.bmp in {folder}); upload the training images there"
        )
    problems = inspect_images(images, dataset.resolution)
    if problems.unreadable:
        raise InvalidTrainingInput(
            f"spec.dataset.uri {dataset.uri}: {len(problems.unreadable)} unreadable or corrupt "
            f"images: {_listing(problems.unreadable)}; remove or replace them"
        )
    if problems.too_small:
        raise InvalidTrainingInput(
            f"spec.dataset.uri {dataset.uri}: {len(problems.too_small)} images smaller than "
            f"spec.dataset.resolution={dataset.resolution}: {_listing(problems.too_small)}; "
            "lower the resolution or use larger images"
        )
    if method_class(job.spec.method).captions_required and not dataset.instance_prompt:
        uncaptioned = [r.path.name for r in read_records(folder) if not r.caption]
        if uncaptioned:
            raise InvalidTrainingInput(
                f"spec.dataset.uri {dataset.uri}: {len(uncaptioned)} images have no caption "
                f"file ({_listing(uncaptioned)}) and spec.dataset.instancePrompt is unset; "
                "add <image>.txt captions or set instancePrompt"
            )


def check_model(job: FineTuneJob, model_dir: Path) -> None:
    """The base model folder has the diffusers parts the trainer loads."""
    missing = [
        part
        for part in ("unet/config.json", "vae/config.json", "text_encoder/config.json", "tokenizer")
        if not (model_dir / part).exists()
    ]
    if missing:
        raise InvalidTrainingInput(
            f"spec.baseModel.uri {job.spec.base_model.uri}: not a Stable Diffusion diffusers "
            f"folder (missing {', '.join(missing)})"
        )


def preflight(
    job: FineTuneJob, settings: Settings, tracking_uri: str, checkpoint_uri: str, cache_dir: Path
) -> PreparedInputs:
    """Run every check; return the local folders of the model and the dataset."""
    check_s3(job, settings, checkpoint_uri)
    check_mlflow(tracking_uri)
    try:
        dataset_dir = materialize(job.spec.dataset.uri, cache_dir, settings)
    except Exception as error:
        raise InvalidTrainingInput(f"spec.dataset.uri {job.spec.dataset.uri}: {error}") from error
    check_dataset(job, dataset_dir)
    try:
        model_dir = materialize(job.spec.base_model.uri, cache_dir, settings)
    except Exception as error:
        raise InvalidTrainingInput(
            f"spec.baseModel.uri {job.spec.base_model.uri}: {error}"
        ) from error
    check_model(job, model_dir)
    method_class(job.spec.method).preflight(job.spec, model_dir)
    return PreparedInputs(model_dir=model_dir, dataset_dir=dataset_dir)
