"""`tuneforge-adapter.json`: the v2 manifest, its strictness, and reading v1 manifests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from tuneforge.contract import (
    LORA_WEIGHTS,
    TI_EMBEDDINGS,
    AdapterManifest,
    EmbeddingsSection,
    LoraSection,
)

LORA = LoraSection(rank=16, alpha=16.0, target_modules=["to_q", "to_v"], text_encoder=True)


def lora_manifest(**changes: Any) -> AdapterManifest:
    """A LoRA manifest as the trainer writes it."""
    values: dict[str, Any] = {
        "method": "lora",
        "base_model": "s3://models/sd15",
        "base_model_fingerprint": "abc",
        "files": [LORA_WEIGHTS],
        "lora": LORA,
        "steps": 800,
        "job_name": "dogs",
        "job_uid": "uid-1",
        **changes,
    }
    return AdapterManifest(**values)


def v2_json(**changes: Any) -> dict[str, Any]:
    """A LoRA manifest as JSON data, with some keys changed."""
    return {**json.loads(lora_manifest().model_dump_json()), **changes}


def test_v2_round_trips_through_json() -> None:
    manifest = lora_manifest()
    text = manifest.model_dump_json()
    assert json.loads(text)["format_version"] == 2
    assert AdapterManifest.model_validate_json(text) == manifest


def test_a_textual_inversion_manifest_round_trips() -> None:
    manifest = AdapterManifest(
        method="textualInversion",
        base_model="hf://org/sd",
        files=[TI_EMBEDDINGS],
        embeddings=EmbeddingsSection(tokens=["<sks>"]),
    )
    assert AdapterManifest.model_validate_json(manifest.model_dump_json()) == manifest


def test_a_lora_and_embeddings_manifest_holds_both_sections() -> None:
    manifest = lora_manifest(
        files=[LORA_WEIGHTS, TI_EMBEDDINGS], embeddings=EmbeddingsSection(tokens=["<a>", "<b>"])
    )
    assert manifest.lora == LORA and manifest.embeddings is not None


@pytest.mark.parametrize(
    "data",
    [
        v2_json(resolution=512),  # an unknown key
        v2_json(job_nmae="dogs"),  # a misspelt key
        v2_json(lora={**LORA.model_dump(), "rnak": 4}),  # a misspelt key in a section
        v2_json(lora={**LORA.model_dump(), "rank": 0}),
        v2_json(lora={**LORA.model_dump(), "target_modules": []}),
        v2_json(method="full"),
        v2_json(format_version=3),
        v2_json(steps=-1),
    ],
    ids=[
        "extra",
        "misspelt",
        "misspelt-in-section",
        "rank-0",
        "no-targets",
        "method",
        "v3",
        "steps",
    ],
)
def test_invalid_manifests_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AdapterManifest.model_validate(data)


def test_sections_must_match_the_files() -> None:
    with pytest.raises(ValidationError, match="'lora' section"):
        lora_manifest(files=[])
    with pytest.raises(ValidationError, match="'lora' section"):
        lora_manifest(lora=None)
    with pytest.raises(ValidationError, match="'embeddings' section"):
        lora_manifest(files=[LORA_WEIGHTS, TI_EMBEDDINGS])
    with pytest.raises(ValidationError, match="'embeddings' section"):
        lora_manifest(embeddings=EmbeddingsSection(tokens=["<a>"]))


def test_full_model_is_a_dreambooth_fine_tune_without_lora() -> None:
    full = AdapterManifest(
        method="dreambooth",
        base_model="s3://models/sd15",
        files=["unet/diffusion_pytorch_model.safetensors"],
        full_model=True,
    )
    assert full.lora is None and full.full_model
    with pytest.raises(ValidationError, match="full_model"):
        lora_manifest(full_model=True)
    with pytest.raises(ValidationError, match="full_model"):
        lora_manifest(method="dreambooth", full_model=True)


def test_a_v1_lora_manifest_is_upgraded() -> None:
    v1 = {
        "format_version": 1,
        "method": "dreambooth",
        "base_model": "s3://models/sd15",
        "base_model_fingerprint": None,
        "files": [LORA_WEIGHTS],
        "rank": 8,
        "alpha": 4.0,
        "target_modules": ["to_q", "to_k"],
        "text_encoder_lora": True,
        "tokens": [],
        "steps": 100,
        "job_name": "dogs",
        "job_uid": "uid-1",
    }
    manifest = AdapterManifest.model_validate_json(json.dumps(v1))
    assert manifest.format_version == 2
    assert manifest.lora == LoraSection(
        rank=8, alpha=4.0, target_modules=["to_q", "to_k"], text_encoder=True
    )
    assert manifest.embeddings is None and not manifest.full_model
    assert (manifest.method, manifest.steps, manifest.job_uid) == ("dreambooth", 100, "uid-1")
    assert json.loads(manifest.model_dump_json())["format_version"] == 2  # written as v2


def test_a_v1_lora_manifest_without_alpha_gets_alpha_equal_to_rank() -> None:
    manifest = AdapterManifest.model_validate(
        {
            "format_version": 1,
            "method": "lora",
            "base_model": "b",
            "files": [LORA_WEIGHTS],
            "rank": 4,
            "target_modules": ["to_q"],
        }
    )
    assert manifest.lora is not None and manifest.lora.alpha == 4.0


def test_a_v1_textual_inversion_manifest_is_upgraded() -> None:
    v1 = {
        "format_version": 1,
        "method": "textualInversion",
        "base_model": "hf://org/sd",
        "files": [TI_EMBEDDINGS],
        "rank": None,
        "alpha": None,
        "target_modules": [],
        "text_encoder_lora": False,
        "tokens": ["<sks>"],
        "steps": 50,
    }
    manifest = AdapterManifest.model_validate(v1)
    assert manifest.embeddings == EmbeddingsSection(tokens=["<sks>"])
    assert manifest.lora is None and not manifest.full_model


def test_a_v1_full_dreambooth_manifest_is_upgraded_to_full_model() -> None:
    manifest = AdapterManifest.model_validate(
        {
            "format_version": 1,
            "method": "dreambooth",
            "base_model": "b",
            "files": ["unet/diffusion_pytorch_model.safetensors"],
            "target_modules": [],
            "tokens": [],
        }
    )
    assert manifest.full_model and manifest.lora is None


def test_v1_keys_without_a_format_version_are_read_as_v1() -> None:
    manifest = AdapterManifest.model_validate(
        {
            "method": "lora",
            "base_model": "b",
            "files": [LORA_WEIGHTS],
            "rank": 2,
            "alpha": 2.0,
            "target_modules": ["to_q"],
        }
    )
    assert manifest.lora == LoraSection(rank=2, alpha=2.0, target_modules=["to_q"])


def test_a_v2_manifest_built_in_python_needs_no_format_version() -> None:
    manifest = AdapterManifest(method="lora", base_model="b", files=[LORA_WEIGHTS], lora=LORA)
    assert manifest.format_version == 2 and manifest.lora == LORA


def test_a_v1_manifest_with_a_misspelt_key_is_refused() -> None:
    with pytest.raises(ValidationError):
        AdapterManifest.model_validate(
            {"format_version": 1, "method": "lora", "base_model": "b", "files": [], "stesp": 3}
        )


def test_the_file_omits_default_formats_so_older_serving_reads_it() -> None:
    """Serving from before `output.formats` refuses unknown keys: a default adapter's file has
    none; a kohya copy is the only thing that adds `formats`."""
    from tuneforge.contract import KOHYA_LORA_WEIGHTS, AdapterFormat

    plain = lora_manifest()
    assert "formats" not in json.loads(plain.to_file_text())
    assert AdapterManifest.model_validate_json(plain.to_file_text()) == plain
    both = lora_manifest(
        files=[LORA_WEIGHTS, KOHYA_LORA_WEIGHTS],
        formats=[AdapterFormat.DIFFUSERS, AdapterFormat.KOHYA],
    )
    assert json.loads(both.to_file_text())["formats"] == ["diffusers", "kohya"]
    assert AdapterManifest.model_validate_json(both.to_file_text()) == both
