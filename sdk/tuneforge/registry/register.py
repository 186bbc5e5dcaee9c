"""Registering an adapter folder: upload its files as run artifacts, create the model version.

`attach_model_card` then gives the version its model card: a description (method, base,
key parameters, evaluation figures and the quality gate's verdict) and a `README.md` run
artifact (`MODEL_CARD_ARTIFACT`), like the cards popular trainers write; the card's text comes
from `model_card`. The README stays beside, not inside, the `adapter/` folder, which holds
only safetensors weights and the manifest.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tuneforge.api import QUALITY_GATE_TAG, FineTuneJobSpec, QualityGateVerdict
from tuneforge.api.evaluation import GRIDS_ARTIFACT
from tuneforge.contract import ADAPTER_ARTIFACT_PATH, ADAPTER_MANIFEST, AdapterManifest, Tag
from tuneforge.errors import RegistryError, TuneForgeError
from tuneforge.registry.mlflow_store import MlflowStore
from tuneforge.registry.results import RegisteredVersion
from tuneforge.registry.safety import check_artifact_names, checked_entries
from tuneforge.storage import S3Uri, is_s3_uri, local_path, minio_client


def register_adapter(
    store: MlflowStore,
    run_id: str,
    local_dir: str | Path,
    manifest: AdapterManifest,
    name: str,
    alias: str | None = None,
    tags: dict[str, str] | None = None,
    artifact_path: str = ADAPTER_ARTIFACT_PATH,
) -> RegisteredVersion:
    """Upload the adapter folder as run artifacts and register it as a model version.

    Idempotent: a version of `name` tagged with the manifest's `job_uid` (or, without
    one, from the same run) is returned instead of registering again; the alias is
    (re)applied either way. UnsafeArtifactError when the folder holds anything but
    safetensors files and the manifest. `artifact_path`: the run's artifact folder the files
    go to (a second adapter of the same run, e.g. a DreamBooth's extracted LoRA, needs its own).
    """
    folder = Path(local_dir)
    files = adapter_files(folder, manifest)
    with store.client() as client:
        try:
            run = client.get_run(run_id)
        except Exception as error:
            if getattr(error, "error_code", None) != "RESOURCE_DOES_NOT_EXIST":
                raise  # MLflow down or refusing: the caller's retry decides
            raise RegistryError(f"no MLflow run {run_id!r} at {store.tracking_uri}") from error
        source = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"
        existing = _registered_before(store, client, name, run_id, source, manifest)
        if existing is None:
            _upload(store, client, run_id, files, manifest, source, artifact_path)
            _ensure_model(client, name)
            version_tags = {**version_tags_of(manifest), **(tags or {})}
            created = client.create_model_version(
                name, source=source, run_id=run_id, tags=version_tags
            )
            existing = RegisteredVersion(name, int(created.version), source, run_id)
        if alias:
            client.set_registered_model_alias(name, alias, str(existing.version))
    return existing


def adapter_files(folder: Path, manifest: AdapterManifest) -> list[Path]:
    """The files to upload; RegistryError / UnsafeArtifactError when the folder is not fit."""
    if not folder.is_dir():
        raise RegistryError(f"cannot register {folder}: not a directory")
    entries = checked_entries(folder, f"adapter folder {folder}")
    names = {e.name for e in entries}
    if not any(n.endswith(".safetensors") for n in names):
        raise RegistryError(f"cannot register {folder}: it holds no .safetensors weights")
    missing = [f for f in manifest.files if f not in names]
    if missing:
        raise RegistryError(
            f"cannot register {folder}: the manifest lists {', '.join(missing)} "
            "which the folder does not hold"
        )
    check_artifact_names(list(manifest.files), f"manifest of {folder}")
    return entries


def version_tags_of(manifest: AdapterManifest) -> dict[str, str]:
    """The tags a model version gets from its manifest (method, base model, job)."""
    tags = {Tag.METHOD: manifest.method, Tag.BASE_MODEL: manifest.base_model}
    if manifest.job_uid:
        tags[Tag.JOB_UID] = manifest.job_uid
    if manifest.job_name:
        tags[Tag.JOB_NAME] = manifest.job_name
    return tags


def _registered_before(
    store: MlflowStore,
    client: Any,
    name: str,
    run_id: str,
    source: str,
    manifest: AdapterManifest,
) -> RegisteredVersion | None:
    for version in sorted(store.versions(client, name), key=lambda v: int(v.version)):
        version_tags = version.tags or {}
        same_job = bool(manifest.job_uid) and version_tags.get(Tag.JOB_UID) == manifest.job_uid
        same_run = not manifest.job_uid and version.run_id == run_id and version.source == source
        if same_job or same_run:
            return RegisteredVersion(name, int(version.version), version.source, version.run_id)
    return None


def _ensure_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        with contextlib.suppress(MlflowException):  # created meanwhile: fine
            client.create_registered_model(name)


def _upload(
    store: MlflowStore,
    client: Any,
    run_id: str,
    files: list[Path],
    manifest: AdapterManifest,
    source: str,
    artifact_path: str = ADAPTER_ARTIFACT_PATH,
) -> None:
    with tempfile.TemporaryDirectory(prefix="tuneforge-register-") as staging_name:
        staging = Path(staging_name)
        for path in files:
            shutil.copyfile(path, staging / path.name)
        if not (staging / ADAPTER_MANIFEST).exists():
            (staging / ADAPTER_MANIFEST).write_text(manifest.to_file_text())
        _put_files(store, client, run_id, sorted(staging.iterdir()), source, artifact_path)


def _put_files(
    store: MlflowStore,
    client: Any,
    run_id: str,
    files: list[Path],
    destination: str,
    artifact_path: str,
) -> None:
    """Put `files` at `destination`, the run's `artifact_path` folder, however it is stored."""
    target = local_path(destination) if not is_s3_uri(destination) else None
    if is_s3_uri(destination):
        uri = S3Uri.parse(destination)
        s3 = minio_client(store.settings)
        for path in files:
            s3.fput_object(uri.bucket, uri.key(path.name), str(path))
    elif target is not None:
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copyfile(path, target / path.name)
    else:  # mlflow-artifacts:/ (proxied server) and other schemes: MLflow's own client
        for path in files:
            client.log_artifact(run_id, str(path), artifact_path=artifact_path)


MODEL_CARD_ARTIFACT = "model-card"
"""Run artifact folder holding the version's `README.md`."""
MODEL_CARD_TAG = "tuneforge.model_card"
"""Model-version tag: the artifact URI of the version's `README.md`."""


def model_card(
    name: str,
    version: int,
    manifest: AdapterManifest,
    spec: FineTuneJobSpec,
    verdict: QualityGateVerdict | None,
    grids: list[str] | None = None,
) -> str:
    """The model card as Markdown: what was trained, how, and how good it measured."""
    training = spec.training
    lines = [
        f"# {name} version {version}",
        "",
        f"A **{manifest.method}** adapter for `{manifest.base_model}`, trained by TuneForge "
        f"job `{manifest.job_name or '?'}` for {manifest.steps} steps.",
        "",
        "## Training",
        "",
        "| parameter | value |",
        "|---|---|",
        f"| method | {manifest.method} |",
        f"| base model | `{manifest.base_model}` |",
        f"| instance prompt | {spec.dataset.instance_prompt or '(captions)'} |",
        f"| steps | {manifest.steps} |",
        f"| learning rate | {training.learning_rate:g} |",
        f"| batch size | {training.batch_size} x {training.gradient_accumulation_steps} "
        f"accumulation x {spec.resources.workers} workers |",
        f"| resolution | {spec.dataset.resolution} |",
        f"| mixed precision | {training.mixed_precision.value} |",
        f"| seed | {training.seed} |",
    ]
    if manifest.lora is not None:
        lines.append(
            f"| LoRA | rank {manifest.lora.rank}, alpha {manifest.lora.alpha:g}, "
            f"targets {', '.join(manifest.lora.target_modules)} |"
        )
    if manifest.embeddings is not None:
        lines.append(f"| tokens | {', '.join(manifest.embeddings.tokens)} |")
    lines += ["", "## Evaluation", ""]
    if verdict is None:
        lines.append("Not evaluated (the job had no `spec.evaluation`).")
    else:
        lines += [
            "DreamBooth paper protocol (DINO and CLIP-I: subject fidelity; CLIP-T: prompt "
            'fidelity); "base" is the base model on the same prompts and seeds.',
            "",
            "| metric | this version | base | minimum |",
            "|---|---|---|---|",
        ]
        for metric in sorted(verdict.metrics.keys() | verdict.minimums.keys()):
            value = verdict.metrics.get(metric)
            base = verdict.base.get(metric)
            minimum = verdict.minimums.get(metric)
            lines.append(
                f"| {metric} | {'missing' if value is None else f'{value:.4f}'} "
                f"| {'' if base is None else f'{base:.4f}'} "
                f"| {'' if minimum is None else f'{minimum:g}'} |"
            )
        lines += ["", f"Quality gate: {verdict.message()}."]
    if grids:
        lines += ["", "## Images (base above, this version below)", ""]
        lines += [f"![{grid}](../{GRIDS_ARTIFACT}/{grid})" for grid in grids]
    loaders = [
        loader
        for loader, present in (
            ("load_lora_weights", manifest.lora is not None),
            ("load_textual_inversion", manifest.embeddings is not None),
        )
        if present
    ]
    usage = "` and `".join(loaders or ["load_lora_weights"])
    lines += [
        "",
        "## Use",
        "",
        f"Serve it as `{name}/{version}` (`tuneforge generate --adapter {name}/{version}`), or "
        f"fetch the `adapter/` artifacts and call diffusers' `{usage}` on them.",
    ]
    return "\n".join(lines) + "\n"


def card_description(manifest: AdapterManifest, verdict: QualityGateVerdict | None) -> str:
    """The short description MLflow shows on the version page."""
    text = f"{manifest.method} adapter for {manifest.base_model}, {manifest.steps} steps"
    if manifest.job_name:
        text += f", job {manifest.job_name}"
    if verdict is not None:
        text += f". Evaluation {verdict.message()}"
    return text + ". Model card: README.md in the run's model-card/ artifacts."


def attach_model_card(
    store: MlflowStore,
    registered: RegisteredVersion,
    readme: str,
    description: str,
    verdict: QualityGateVerdict | None,
    folder: str = MODEL_CARD_ARTIFACT,
) -> str:
    """Upload `README.md` to the version's run (under `folder`: a second version of the same
    run needs its own), set its description and tags; returns the URI."""
    with store.client() as client:
        run = client.get_run(registered.run_id)
        uri = f"{run.info.artifact_uri.rstrip('/')}/{folder}"
        with tempfile.TemporaryDirectory(prefix="tuneforge-card-") as tmp:
            card = Path(tmp) / "README.md"
            card.write_text(readme)
            _put_files(store, client, registered.run_id, [card], uri, folder)
        version = str(registered.version)
        client.update_model_version(registered.name, version, description=description)
        client.set_model_version_tag(registered.name, version, MODEL_CARD_TAG, f"{uri}/README.md")
        if verdict is not None:
            client.set_model_version_tag(
                registered.name, version, QUALITY_GATE_TAG, verdict.to_json()
            )
    return f"{uri}/README.md"


class QualityGateHeldBack(TuneForgeError):
    """The version's quality gate failed; promoting it needs `force`."""


def gate_of_version(store: MlflowStore, name: str, version: int | str) -> QualityGateVerdict | None:
    """The quality gate's verdict recorded on a model version (None: it was not gated)."""
    with store.client() as client:
        tags = client.get_model_version(name, str(version)).tags or {}
    text = tags.get(QUALITY_GATE_TAG)
    return QualityGateVerdict.from_json(text) if text else None


def check_promotable(store: MlflowStore, name: str, version: int | str, force: bool) -> None:
    """QualityGateHeldBack when the version failed its gate and `force` is not given."""
    verdict = gate_of_version(store, name, version)
    if verdict is not None and not verdict.passed and not force:
        raise QualityGateHeldBack(
            f"{name} version {version} failed its quality gate ({verdict.message()}): "
            "promote it anyway with --force (SDK: force=True), or train a better version"
        )
