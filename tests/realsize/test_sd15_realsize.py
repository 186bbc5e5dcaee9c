"""SD 1.5 at its real size (random weights) through the real entry points, on CPU.

A rank-16 LoRA job (256 px, 2 steps, bf16 autocast) on the single-file checkpoint in
embedded mode, registered in MLflow; a textual-inversion job (768-wide embedding rows)
the same way; the serving engine loads the real-size single file, hot-swaps each adapter
in, and renders what plain diffusers renders on the diffusers folder of the same weights
with its own `load_lora_weights` / `load_textual_inversion`, within `TOLERANCE`. Each test
prints the peak RSS of what it ran. Run inside scripts/netns-run (Ray starts).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tests.realsize.conftest import LORA_MODEL, TI_MODEL, TOKEN, Rendered, Sd15Random, Trained

pytestmark = [pytest.mark.realsize, pytest.mark.slow, pytest.mark.timeout(2400)]
"""The first test also waits for the session fixtures: the model's first build (minutes),
both jobs, serving and the diffusers reference; the default 900 s is too short for that."""

TOLERANCE = 2.0 / 255 + 1e-6
"""Largest pixel difference allowed between serving and plain diffusers: two 8-bit levels
(serving's PNG rounding against diffusers' float output, plus summation-order differences
of the padded rank-16 hot-swap slot over an 860 M-parameter UNet)."""


def test_sd15_random_has_the_published_architecture(sd15_random: Sd15Random) -> None:
    """Folder and single file: SD 1.5's published sizes, the same weights, one fingerprint."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors import safe_open

    from tuneforge.assets.sd15 import SD15, SD15_UNET_PARAMETERS, config_dir, single_file_config_dir
    from tuneforge.assets.sd15_random import SD15_RANDOM_MARKER
    from tuneforge.base_fingerprint import base_model_fingerprint

    folder, single = sd15_random.folder, sd15_random.single_file
    marker = json.loads((folder / SD15_RANDOM_MARKER).read_text())
    assert marker["parameters"]["unet"] == SD15_UNET_PARAMETERS
    assert base_model_fingerprint(single) == base_model_fingerprint(folder)
    assert single_file_config_dir(single) == config_dir(SD15)
    unet = UNet2DConditionModel.from_single_file(
        str(single), config=str(folder), subfolder="unet", local_files_only=True
    )
    assert sum(p.numel() for p in unet.parameters()) == SD15_UNET_PARAMETERS
    with safe_open(str(folder / "unet/diffusion_pytorch_model.safetensors"), "pt") as handle:
        state = unet.state_dict()
        for key in handle.keys():
            assert torch.equal(handle.get_tensor(key), state[key]), key
    print(f"\nsingle file {single.stat().st_size / 2**30:.2f} GiB")


def _fetched(trained: Trained, model: str) -> Any:
    """Version 1 of `model` fetched from the jobs' registry (files and typed manifest)."""
    from tuneforge.contract import AdapterRef
    from tuneforge.registry import AdapterRegistry

    registry = AdapterRegistry(trained.settings())
    resolved = registry.resolve(AdapterRef.of(model, 1))
    return registry.fetch(resolved, trained.home / "fetched" / model)


def _succeeded(trained: Trained, key: str, model: str) -> None:
    run = trained.runs[key]
    print("\n" + run.peak.line(f"of the {key} job (tuneforge run, Ray included)"))
    print(f"{key} job: {run.seconds:.0f} s from `tuneforge run` to its exit")
    assert run.returncode == 0, run.output[-4000:]
    assert f"→ {model} version 1" in run.output, run.output[-4000:]


def test_lora_job_on_the_single_file_registers_in_mlflow(
    trained: Trained, sd15_random: Sd15Random
) -> None:
    from tuneforge.base_fingerprint import base_model_fingerprint

    _succeeded(trained, "lora", LORA_MODEL)
    manifest = _fetched(trained, LORA_MODEL).manifest
    assert (manifest.method, manifest.steps) == ("lora", 2)
    assert manifest.lora is not None and manifest.lora.rank == 16
    fingerprint = base_model_fingerprint(sd15_random.single_file)
    assert manifest.base_model_fingerprint == fingerprint
    assert base_model_fingerprint(sd15_random.folder) == fingerprint


def test_textual_inversion_job_learns_768_wide_rows(trained: Trained) -> None:
    from safetensors.numpy import load_file

    from tuneforge.contract import TI_EMBEDDINGS

    _succeeded(trained, "ti", TI_MODEL)
    fetched = _fetched(trained, TI_MODEL)
    assert fetched.manifest.embeddings is not None
    embeddings = load_file(str(fetched.path / TI_EMBEDDINGS))
    assert {name: value.shape for name, value in embeddings.items()} == {TOKEN: (1, 768)}


def _compare(served: Rendered, reference: Rendered, key: str) -> None:
    print("\n" + served.peak.line("of the serving engine (single file, 3 renders)"))
    print(reference.peak.line("of the plain diffusers reference (folder, 3 renders)"))
    print(f"serving {served.seconds:.0f} s, diffusers reference {reference.seconds:.0f} s")
    ours, theirs = served.images[key], reference.images[key]
    difference = np.abs(ours - theirs)
    print(f"{key}: max |serving - diffusers| = {difference.max() * 255:.2f} levels of 255")
    assert difference.max() <= TOLERANCE
    changed = np.abs(served.images[key] - served.images["base"]).max()
    assert changed > TOLERANCE, f"the {key} adapter leaves the image within the tolerance"


def test_serving_renders_the_real_size_base_like_diffusers(
    served: Rendered, reference: Rendered
) -> None:
    difference = np.abs(served.images["base"] - reference.images["base"])
    assert difference.max() <= TOLERANCE, "single file and folder give different images"


def test_serving_hot_swaps_the_lora_like_diffusers_load_lora_weights(
    served: Rendered, reference: Rendered
) -> None:
    _compare(served, reference, "lora")


def test_serving_hot_swaps_the_embedding_like_diffusers_load_textual_inversion(
    served: Rendered, reference: Rendered
) -> None:
    _compare(served, reference, "ti")
