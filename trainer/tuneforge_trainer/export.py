"""Adapter export: method files plus `tuneforge-adapter.json` (the trainer → serving contract)."""

from __future__ import annotations

from pathlib import Path

import torch

from tuneforge.api import FineTuneJob
from tuneforge.contract import ADAPTER_MANIFEST, AdapterManifest
from tuneforge_trainer.methods import TrainingMethod


def export_adapter(
    method: TrainingMethod,
    state: dict[str, torch.Tensor],
    out_dir: Path,
    job: FineTuneJob,
    job_uid: str,
    steps: int,
) -> AdapterManifest:
    """Write the adapter files and their manifest into `out_dir`; returns the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    exported = method.export(state, out_dir)
    manifest = AdapterManifest(
        method=method.method.value,
        base_model=job.spec.base_model.uri,
        base_model_fingerprint=method.components.fingerprint,
        files=exported.files,
        lora=exported.lora,
        embeddings=exported.embeddings,
        full_model=exported.full_model,
        steps=steps,
        job_name=job.name,
        job_uid=job_uid,
    )
    write_manifest(manifest, out_dir)
    return manifest


def write_manifest(manifest: AdapterManifest, out_dir: Path) -> Path:
    """`tuneforge-adapter.json` beside the weights."""
    path = out_dir / ADAPTER_MANIFEST
    path.write_text(manifest.model_dump_json(indent=2))
    return path


def read_manifest(adapter_dir: Path) -> AdapterManifest:
    """The manifest of an exported adapter folder."""
    return AdapterManifest.model_validate_json((adapter_dir / ADAPTER_MANIFEST).read_text())
