"""Bad input fails fast, before any accelerator time, with one message naming what and where.

Checked on the driver before Ray starts a worker: the tenancy rules of the job's namespace
(`tuneforge.tenancy.job_refusals`, again after admission, with the checkpoint location and
MLflow experiment in force; local paths only in embedded mode), S3 credentials and reachability (when any
URI or the checkpoint storage is on S3), MLflow reachability, the dataset (empty, unreadable
or corrupt images, images smaller than the resolution, missing captions), the base model's
parts, and the method's own settings (`TrainingMethod.preflight`: LoRA target modules
against the UNet built from its config, textual-inversion tokens).

The driver never downloads the base model's weights: every check reads configs. A local
folder is read where it is; an S3 or Hub folder contributes only its configs and tokenizer
(its listing shows the weights are there); a single-file checkpoint only its header (tensor
names and shapes), which picks the SD 1.x architecture whose configs TuneForge writes
(`tuneforge.assets.sd15`). The workers download the weights where they load them.
"""

from __future__ import annotations

import fnmatch
import json
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tuneforge.api import FineTuneJob
from tuneforge.assets.sd15 import architecture_for, config_dir
from tuneforge.base_fingerprint import single_file_signature
from tuneforge.base_model import (
    VARIANTS,
    BaseModelSource,
    component_weight_files,
    hf_allow_patterns,
    parse_base_model,
)
from tuneforge.inputs import materialize, s3_cache_dir
from tuneforge.settings import Settings
from tuneforge.storage import S3Uri, download_prefix, is_s3_uri, list_prefix, minio_client
from tuneforge.tenancy import job_refusals, scope_from_env
from tuneforge_trainer.data import inspect_images, instance_root, list_images, read_records
from tuneforge_trainer.errors import InvalidTrainingInput, ServiceUnavailable
from tuneforge_trainer.methods import method_class
from tuneforge_trainer.strategies.precision import check_precision

MAX_LISTED = 10
CONFIG_PATTERNS = tuple(p for p in hf_allow_patterns() if not p.endswith(".safetensors"))
"""The files of a diffusers folder the checks read: configs and tokenizer, no weights."""
HEADER_SUFFIX = ".header"
"""Suffix of the local copy of a remote checkpoint's safetensors header (no tensor data)."""


@dataclass(frozen=True)
class PreparedInputs:
    """Local folders of the checked inputs."""

    model_config_dir: Path
    """The base model's configs and tokenizer (its weights only when the base is local)."""
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


def check_tenancy(job: FineTuneJob, settings: Settings, checkpoint_uri: str) -> None:
    """The job keeps to its namespace's tenancy rules (`TUNEFORGE_JOB_SCOPE`, set by the
    operator): its URIs, checkpoints, model name and experiment; no local path in a cluster."""
    try:
        scope = scope_from_env(settings.job_scope, job.metadata.namespace)
    except ValueError as error:
        raise InvalidTrainingInput(str(error)) from error
    problems = job_refusals(
        job.spec,
        scope,
        checkpoint_uri=checkpoint_uri if scope.cluster else None,
        experiment=settings.mlflow_experiment,
    )
    if problems:
        raise InvalidTrainingInput("Refused by tenancy: " + "; ".join(problems))


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
    records = read_records(folder)  # refuses caption files with no image
    if method_class(job.spec.method).captions_required and not dataset.instance_prompt:
        uncaptioned = [r.path.name for r in records if not r.caption]
        if uncaptioned:
            raise InvalidTrainingInput(
                f"spec.dataset.uri {dataset.uri}: {len(uncaptioned)} images have no caption "
                f"file ({_listing(uncaptioned)}) and spec.dataset.instancePrompt is unset; "
                "add <image>.txt captions or set instancePrompt"
            )


def check_model(job: FineTuneJob, model_dir: Path) -> None:
    """The base model's config folder has the diffusers parts the trainer loads."""
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


def model_config_dir(job: FineTuneJob, settings: Settings, cache_dir: Path) -> Path:
    """The base model's configs and tokenizer as a local folder, without its weights.

    ValueError (or a storage or Hub error) when the base model cannot be read; FileNotFoundError
    naming the weight files an S3 folder lacks; KeyError when a checkpoint is not SD 1.x.
    """
    base = job.spec.base_model
    source = parse_base_model(base.uri, base.revision, base.variant)
    if source.single_file:
        header = _checkpoint_header(source, cache_dir / "headers", settings)
        folder: Path = config_dir(architecture_for(single_file_signature(header)), settings)
        return folder
    if source.scheme == "local":
        return Path(source.location)
    if source.scheme == "s3":
        return _s3_configs(source, cache_dir / "configs", settings)
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            source.location,
            revision=source.revision,
            allow_patterns=list(CONFIG_PATTERNS),
            cache_dir=str(cache_dir / "hf"),
        )
    )


def _check_weights(names: set[str]) -> None:
    """A folder's file names include one weight file per component (plain or a variant)."""
    for variant in (None, *VARIANTS):
        if all(str(path) in names for path in component_weight_files(Path(), variant)):
            return
    missing = [str(p) for p in component_weight_files(Path(), None) if str(p) not in names]
    raise FileNotFoundError(
        f"lacks weights: {', '.join(missing)} (safetensors only, or their *.fp16.safetensors)"
    )


def _s3_configs(source: BaseModelSource, root: Path, settings: Settings) -> Path:
    """Download only the config and tokenizer files of the S3 folder (its listing shows the
    weights are there)."""
    names = set(list_prefix(source.location, settings))
    if not names:
        raise FileNotFoundError(f"nothing found at {source.location}")
    if "model_index.json" in names:
        _check_weights(names)
    dest: Path = s3_cache_dir(source.location, root)
    for name in sorted(names):
        if any(fnmatch.fnmatch(name, pattern) for pattern in CONFIG_PATTERNS):
            download_prefix(f"{source.location}/{name}", (dest / name).parent, settings)
    return dest


def _checkpoint_header(source: BaseModelSource, root: Path, settings: Settings) -> Path:
    """A local file holding the checkpoint's safetensors header (the whole file if local)."""
    if source.scheme == "local":
        return Path(source.location)
    if source.scheme == "s3":
        stored = s3_cache_dir(source.location, root)
        target: Path = stored.with_name(stored.name + HEADER_SUFFIX)
        uri = S3Uri.parse(source.location)
        client = minio_client(settings)

        def read(offset: int, length: int) -> bytes:
            response = client.get_object(uri.bucket, uri.prefix, offset=offset, length=length)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

        prefix = read(0, 8)
        header = read(8, struct.unpack("<Q", prefix)[0])
    else:
        from huggingface_hub import HfApi

        assert source.filename is not None  # a single file on the Hub names it
        tensors = (
            HfApi()
            .parse_safetensors_file_metadata(
                source.location, source.filename, revision=source.revision
            )
            .tensors
        )
        entries = {
            name: {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": list(t.data_offsets)}
            for name, t in tensors.items()
        }
        header = json.dumps(entries).encode()
        prefix = struct.pack("<Q", len(header))
        revision = source.revision or "main"
        target = root / "hf" / source.location / revision / (source.filename + HEADER_SUFFIX)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(prefix + header)
    return target


def preflight(
    job: FineTuneJob, settings: Settings, tracking_uri: str, checkpoint_uri: str, cache_dir: Path
) -> PreparedInputs:
    """Run every check; return the model's config folder and the dataset's local folder."""
    check_tenancy(job, settings, checkpoint_uri)
    check_precision(job)
    check_s3(job, settings, checkpoint_uri)
    check_mlflow(tracking_uri)
    try:
        dataset_dir = materialize(job.spec.dataset.uri, cache_dir, settings)
    except Exception as error:
        raise InvalidTrainingInput(f"spec.dataset.uri {job.spec.dataset.uri}: {error}") from error
    check_dataset(job, dataset_dir)
    try:
        config_folder = model_config_dir(job, settings, cache_dir)
    except Exception as error:
        raise InvalidTrainingInput(
            f"spec.baseModel.uri {job.spec.base_model.uri}: {error}"
        ) from error
    check_model(job, config_folder)
    method_class(job.spec.method).preflight(job.spec, config_folder)
    return PreparedInputs(model_config_dir=config_folder, dataset_dir=dataset_dir)
