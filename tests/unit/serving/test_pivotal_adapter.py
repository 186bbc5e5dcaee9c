"""A pivotal-tuning adapter (a LoRA and new-token embeddings in one registered version) is
served by hot-swap through one adapter reference, exactly as plain diffusers renders it with
`load_lora_weights` + `load_textual_inversion` on the same files.

Two pivotal adapters: the one the trainer exports (`tests/fixtures/pivotal.py`, 3 steps, so
its LoRA is small) and one assembled from seeded random test weights, strong enough that
each of its two parts visibly changes the image.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.assets import load_tiny_pipeline
from tests.fixtures.pivotal import PIVOTAL_TOKEN, trained_pivotal
from tests.fixtures.serving import (
    FolderAdapterSource,
    build_engine,
    diffusers_reference,
    make_lora_adapter,
    make_ti_adapter,
    png_pixels,
)
from tuneforge.contract import (
    ADAPTER_MANIFEST,
    LORA_WEIGHTS,
    TI_EMBEDDINGS,
    AdapterManifest,
    EmbeddingsSection,
    LoraSection,
)

QUANT = 1.0 / 255 + 1e-6  # one 8-bit level: PNG rounding against a float reference
STRONG_TOKEN = "<pv-toy>"


def _strong_pivotal(model_dir: Path, folder: Path) -> Path:
    """Random LoRA (seed 500) and 2 vectors for `<pv-toy>` (seed 501) in one pivotal folder."""
    make_lora_adapter(model_dir, folder, seed=500, rank=4)
    make_ti_adapter(model_dir, folder, seed=501, tokens={STRONG_TOKEN: 2})
    lora = AdapterManifest.model_validate_json((folder / ADAPTER_MANIFEST).read_text())
    manifest = lora.model_copy(
        update={
            "method": "pivotal",
            "files": [LORA_WEIGHTS, TI_EMBEDDINGS],
            "lora": LoraSection(
                rank=4, alpha=4.0, target_modules=["to_q", "to_k", "to_v", "to_out.0"]
            ),
            "embeddings": EmbeddingsSection(tokens=[STRONG_TOKEN]),
        }
    )
    (folder / ADAPTER_MANIFEST).write_text(
        AdapterManifest.model_validate(manifest.model_dump()).to_file_text()
    )
    return folder


@pytest.fixture(scope="module")
def pivotal_folders(
    tiny_model_dir: Path, tiny_dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    trained = trained_pivotal(tiny_model_dir, tiny_dataset_dir, tmp_path_factory)[-1] / "adapter"
    strong = _strong_pivotal(tiny_model_dir, tmp_path_factory.mktemp("pivotal-strong"))
    return {"pivotal-trained": trained, "pivotal-strong": strong}


@pytest.fixture(scope="module")
def folder_source(
    serving_adapters: dict[str, Path], pivotal_folders: dict[str, Path]
) -> FolderAdapterSource:
    """The two pivotal adapters and two plain LoRAs, each version 1 of its name."""
    source = FolderAdapterSource()
    for name in ("lora0", "lora1"):
        source.add(name, serving_adapters[name])
    for name, folder in pivotal_folders.items():
        source.add(name, folder)
    return source


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, folder_source: FolderAdapterSource, tmp_path_factory: Any) -> Any:
    """Two adapter slots: a third adapter evicts one."""
    return build_engine(tiny_model_dir, folder_source, tmp_path_factory.mktemp("pv-cache"), 2)


def _image(engine: Any, job: Any) -> bytes:
    output = engine.generate(job)
    assert output.error is None, output.error
    (image,) = output.images
    return image  # type: ignore[no-any-return]


def _reference(model_dir: Path, folder: Path, prompt: str, lora: bool, embeddings: bool) -> Any:
    pipe = load_tiny_pipeline(model_dir)
    if lora:
        pipe.load_lora_weights(str(folder))
    if embeddings:
        pipe.load_textual_inversion(str(folder / TI_EMBEDDINGS))
    return diffusers_reference(pipe, prompt)


@pytest.mark.parametrize(
    ("name", "token"), [("pivotal-trained", PIVOTAL_TOKEN), ("pivotal-strong", STRONG_TOKEN)]
)
def test_one_reference_serves_both_files_as_diffusers_does(
    engine: Any,
    make_job: Callable[..., Any],
    pivotal_folders: dict[str, Path],
    tiny_model_dir: Path,
    name: str,
    token: str,
) -> None:
    prompt = f"a photo of {token}"
    ours = png_pixels(_image(engine, make_job([(name, 1.0)], prompt=prompt)))
    folder = pivotal_folders[name]
    both = _reference(tiny_model_dir, folder, prompt, lora=True, embeddings=True)
    assert np.abs(ours - both).max() <= QUANT
    if name == "pivotal-strong":  # each part matters: neither alone gives this image
        for lora, embeddings in ((True, False), (False, True)):
            alone = _reference(tiny_model_dir, folder, prompt, lora, embeddings)
            assert np.abs(ours - alone).mean() > 0.01, (lora, embeddings)


def test_swapped_out_and_back_in_exactly_without_leaking_the_tokens(
    engine: Any, make_job: Callable[..., Any]
) -> None:
    prompt = f"a photo of {STRONG_TOKEN}"
    plain = _image(engine, make_job(prompt=prompt))
    first = _image(engine, make_job([("pivotal-strong", 1.0)], prompt=prompt))
    assert first != plain
    loads = engine.stats.slot_loads
    for name in ("lora0", "lora1"):  # two slots: the pivotal adapter is evicted
        _image(engine, make_job([(name, 1.0)], prompt=prompt))
    assert all(ref.name != "pivotal-strong" for ref in engine.attached())
    assert _image(engine, make_job(prompt=prompt)) == plain, "its tokens must leave with it"
    assert _image(engine, make_job([("pivotal-strong", 1.0)], prompt=prompt)) == first
    assert engine.stats.slot_loads - loads == 3, "LoRA and embeddings re-attached as one"
