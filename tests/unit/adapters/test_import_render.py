"""Imported adapters render what plain diffusers renders from the original file.

The serving engine (real slots, real pipeline, a folder source instead of MLflow) serves
the converted folder; diffusers' `load_lora_weights(original)` / `load_textual_inversion
(original)` is the reference. Tolerance: one 8-bit level (PNG rounding against float).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.fixtures.serving import (
    FolderAdapterSource,
    build_engine,
    diffusers_reference,
    make_lora_adapter,
    png_pixels,
)
from tests.unit.adapters.kohya_inputs import write_kohya
from tuneforge.adapters import Layout, convert_adapter
from tuneforge.base_model import resolve_base_model
from tuneforge.settings import Settings

QUANT = 1.0 / 255 + 1e-6
PROMPT = "a photo of <imported-token> on a table"


def _served(engine: Any, source: FolderAdapterSource, name: str, prompt: str) -> Any:
    from tuneforge_serving.jobs import GenerationJob

    job = GenerationJob(
        adapters=[(source.resolve(name), 1.0)],
        prompt=prompt,
        steps=3,
        width=64,
        height=64,
        seed=11,
    )
    output = engine.generate(job)
    assert output.error is None, output.error
    return png_pixels(output.images[0])


@pytest.fixture(scope="module")
def base(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return resolve_base_model(str(tiny_model_dir), tmp_path_factory.mktemp("bases"), Settings())


@pytest.fixture(scope="module")
def kohya_file(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kohya LoRA (UNet + text encoder, rank 4, alpha 8: scale 2) from a random peft LoRA."""
    root = tmp_path_factory.mktemp("kohya")
    peft_dir = make_lora_adapter(
        tiny_model_dir, root / "peft", seed=21, rank=4, alpha=8.0, text_encoder=True
    )
    return write_kohya(peft_dir, root / "my_style.safetensors", alpha=8.0)


@pytest.fixture(scope="module")
def a1111_embedding(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An A1111 safetensors embedding: `emb_params` of 2 vectors, 32 wide (the tiny CLIP)."""
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("a1111") / "imported-token.safetensors"
    vectors = torch.randn(2, 32, generator=torch.Generator().manual_seed(5)) * 2.0
    save_file({"emb_params": vectors}, str(path))
    return path


def test_kohya_lora_renders_like_diffusers_load_lora_weights(
    kohya_file: Path,
    base: Any,
    tiny_model_dir: Path,
    fresh_tiny_pipeline: Any,
    tmp_path: Path,
) -> None:
    converted = convert_adapter(kohya_file, tmp_path / "imported", base, str(tiny_model_dir))
    assert converted.layout is Layout.KOHYA
    assert converted.manifest.lora is not None and converted.manifest.lora.text_encoder
    source = FolderAdapterSource()
    source.add("imported", converted.folder)
    engine = build_engine(tiny_model_dir, source, tmp_path / "cache", 2)
    ours = _served(engine, source, "imported", "a photo of a cat")
    plain = _served_base(engine, "a photo of a cat")
    fresh_tiny_pipeline.load_lora_weights(str(kohya_file), adapter_name="kohya")
    reference = diffusers_reference(fresh_tiny_pipeline, "a photo of a cat")
    assert np.abs(ours - reference).max() <= QUANT
    assert np.abs(ours - plain).mean() > 0.01, "the imported LoRA left the image unchanged"


def _served_base(engine: Any, prompt: str) -> Any:
    from tuneforge_serving.jobs import GenerationJob

    job = GenerationJob(adapters=[], prompt=prompt, steps=3, width=64, height=64, seed=11)
    output = engine.generate(job)
    assert output.error is None, output.error
    return png_pixels(output.images[0])


def test_a1111_embedding_renders_like_diffusers_load_textual_inversion(
    a1111_embedding: Path,
    base: Any,
    tiny_model_dir: Path,
    fresh_tiny_pipeline: Any,
    tmp_path: Path,
) -> None:
    converted = convert_adapter(a1111_embedding, tmp_path / "ti", base, str(tiny_model_dir))
    assert converted.layout is Layout.A1111_EMBEDDING
    assert converted.manifest.embeddings is not None
    assert converted.manifest.embeddings.tokens == ["imported-token"]
    source = FolderAdapterSource()
    source.add("ti", converted.folder)
    engine = build_engine(tiny_model_dir, source, tmp_path / "cache", 2)
    prompt = "a photo of imported-token on a table"
    ours = _served(engine, source, "ti", prompt)
    fresh_tiny_pipeline.load_textual_inversion(str(a1111_embedding), token="imported-token")
    reference = diffusers_reference(fresh_tiny_pipeline, prompt)
    assert np.abs(ours - reference).max() <= QUANT
    assert np.abs(ours - _served_base(engine, prompt)).mean() > 0.01


def test_diffusers_lora_and_embedding_files_render_like_diffusers(
    base: Any,
    tiny_model_dir: Path,
    fresh_tiny_pipeline: Any,
    serving_adapters: dict[str, Path],
    tmp_path: Path,
) -> None:
    """A trainer-style file (alpha 4 over rank 2 in its metadata) and a 2-vector embedding."""
    from tuneforge.contract import LORA_WEIGHTS, TI_EMBEDDINGS

    lora_file = serving_adapters["lora3"] / LORA_WEIGHTS
    ti_file = serving_adapters["ti-cat"] / TI_EMBEDDINGS
    lora = convert_adapter(lora_file, tmp_path / "lora", base, str(tiny_model_dir))
    ti = convert_adapter(ti_file, tmp_path / "ti", base, str(tiny_model_dir))
    assert (lora.layout, ti.layout) == (Layout.DIFFUSERS, Layout.DIFFUSERS_EMBEDDING)
    source = FolderAdapterSource()
    source.add("lora", lora.folder)
    source.add("ti", ti.folder)
    engine = build_engine(tiny_model_dir, source, tmp_path / "cache", 2)
    prompt = "a photo of <cat-toy>"
    ours_lora = _served(engine, source, "lora", prompt)
    ours_ti = _served(engine, source, "ti", prompt)
    pipe = fresh_tiny_pipeline
    pipe.load_textual_inversion(str(ti_file))
    reference_ti = diffusers_reference(pipe, prompt)
    pipe.load_lora_weights(str(lora_file), adapter_name="orig")
    reference_both = diffusers_reference(pipe, prompt)
    assert np.abs(ours_ti - reference_ti).max() <= QUANT
    from tuneforge_serving.jobs import GenerationJob

    both = GenerationJob(
        adapters=[(source.resolve("lora"), 1.0), (source.resolve("ti"), 1.0)],
        prompt=prompt,
        steps=3,
        width=64,
        height=64,
        seed=11,
    )
    output = engine.generate(both)
    assert output.error is None, output.error
    assert np.abs(png_pixels(output.images[0]) - reference_both).max() <= QUANT
    assert np.abs(ours_lora - reference_both).mean() > 0.001  # the TI matters in that prompt


def test_a_text_encoder_lora_in_the_trainers_spelling_imports_and_renders_like_diffusers(
    base: Any,
    tiny_model_dir: Path,
    fresh_tiny_pipeline: Any,
    serving_adapters: dict[str, Path],
    tmp_path: Path,
) -> None:
    """`lora_linear_layer.down/up` text-encoder keys (what `convert_state_dict_to_diffusers`
    writes for the trainer's `trainTextEncoder` LoRAs) import as the diffusers layout."""
    from tuneforge.contract import LORA_WEIGHTS

    original = serving_adapters["lora-te-trained"] / LORA_WEIGHTS
    imported = convert_adapter(original, tmp_path / "te", base, str(tiny_model_dir))
    assert imported.layout == Layout.DIFFUSERS
    source = FolderAdapterSource()
    source.add("te", imported.folder)
    engine = build_engine(tiny_model_dir, source, tmp_path / "cache", 1)
    prompt = "a photo of a cat"
    ours = _served(engine, source, "te", prompt)
    pipe = fresh_tiny_pipeline
    pipe.load_lora_weights(str(original), adapter_name="te")
    assert np.abs(ours - diffusers_reference(pipe, prompt)).max() <= QUANT
    assert np.abs(ours - _served_base(engine, prompt)).mean() > 0.01
