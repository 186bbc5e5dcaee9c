"""Adapter export: method files plus `tuneforge-adapter.json` (the trainer → serving contract).

With `output.formats: [diffusers, kohya]` the final export (the one that is registered) also
writes the LoRA in the kohya-ss / A1111 / ComfyUI layout (`pytorch_lora_weights.kohya.safetensors`)
by the SDK's one kohya writer, and its manifest lists both formats. Intermediate checkpoints
carry the diffusers file only (their manifest lists `diffusers`): converting is a full read and
write of the LoRA, which no resume and no registration of an earlier step needs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tuneforge.adapters.exporter import write_kohya
from tuneforge.api import FineTuneJob
from tuneforge.contract import (
    ADAPTER_MANIFEST,
    KOHYA_LORA_WEIGHTS,
    LORA_WEIGHTS,
    AdapterFormat,
    AdapterManifest,
)
from tuneforge_trainer.errors import InvalidTrainingInput
from tuneforge_trainer.methods import TrainingMethod
from tuneforge_trainer.methods.base import ExportedAdapter


def export_adapter(
    method: TrainingMethod,
    state: dict[str, torch.Tensor],
    out_dir: Path,
    job: FineTuneJob,
    job_uid: str,
    steps: int,
    *,
    final: bool = True,
) -> AdapterManifest:
    """Write the adapter files and their manifest into `out_dir`; returns the manifest.

    `final`: the export that is registered (the last checkpoint) holds every
    `output.formats` layout; an intermediate checkpoint's holds the diffusers layout only.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    exported = method.export(state, out_dir)
    formats = list(job.spec.output.formats) if final else [AdapterFormat.DIFFUSERS]
    files = list(exported.files)
    if AdapterFormat.KOHYA in formats:
        files.append(_write_kohya(exported, out_dir).name)
    manifest = AdapterManifest(
        method=method.method.value,
        base_model=job.spec.base_model.uri,
        base_model_fingerprint=method.components.fingerprint,
        files=files,
        formats=formats,
        lora=exported.lora,
        embeddings=exported.embeddings,
        full_model=exported.full_model,
        steps=steps,
        job_name=job.name,
        job_uid=job_uid,
    )
    write_manifest(manifest, out_dir)
    return manifest


def export_extracted_lora(
    method: TrainingMethod,
    state: dict[str, torch.Tensor],
    checkpoint_dir: Path,
    job: FineTuneJob,
    job_uid: str,
    steps: int,
) -> AdapterManifest | None:
    """A full DreamBooth's extracted LoRA (`dreambooth.extractLora`) beside its weights.

    Writes `extracted_lora/` (the canonical LoRA file and its manifest, registered as
    `<registeredModel>-lora`) and `lora_extraction/` (the per-layer report) into the
    checkpoint; None (nothing written) when the job asks for no extraction.
    """
    from tuneforge_trainer.extract_lora import (
        EXTRACTED_LORA_DIR,
        EXTRACTION_REPORT_DIR,
        base_weights,
        extract,
        write_extraction,
        write_report,
    )

    spec = method.extract_lora
    if spec is None:
        return None
    base = base_weights(method.components.weights, sorted(state))
    extraction = extract(state, base, spec)
    out_dir = checkpoint_dir / EXTRACTED_LORA_DIR
    section = write_extraction(extraction, out_dir)
    write_report(extraction, spec, checkpoint_dir / EXTRACTION_REPORT_DIR)
    manifest = AdapterManifest(
        method=method.method.value,
        base_model=job.spec.base_model.uri,
        base_model_fingerprint=method.components.fingerprint,
        files=[LORA_WEIGHTS],
        lora=section,
        steps=steps,
        job_name=job.name,
        job_uid=job_uid,
    )
    write_manifest(manifest, out_dir)
    return manifest


def _write_kohya(exported: ExportedAdapter, out_dir: Path) -> Path:
    """The kohya/A1111 copy of the exported LoRA; InvalidTrainingInput when there is none."""
    if exported.lora is None:
        raise InvalidTrainingInput(
            "spec.output.formats lists kohya, but this job exported no LoRA: remove kohya"
        )
    return write_kohya(out_dir / LORA_WEIGHTS, exported.lora.alpha, out_dir / KOHYA_LORA_WEIGHTS)


def write_manifest(manifest: AdapterManifest, out_dir: Path) -> Path:
    """`tuneforge-adapter.json` beside the weights."""
    path = out_dir / ADAPTER_MANIFEST
    path.write_text(manifest.to_file_text())
    return path


def read_manifest(adapter_dir: Path) -> AdapterManifest:
    """The manifest of an exported adapter folder."""
    return AdapterManifest.model_validate_json((adapter_dir / ADAPTER_MANIFEST).read_text())
