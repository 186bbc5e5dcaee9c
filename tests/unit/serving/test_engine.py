"""ServingEngine in-process: adapters change images, swaps are exact, nothing leaks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.serving import diffusers_reference, png_pixels

QUANT = 1.0 / 255 + 1e-6  # one 8-bit level: PNG rounding against a float reference


def _only(output: Any) -> bytes:
    assert output.error is None, output.error
    assert len(output.images) == 1
    image: bytes = output.images[0]
    return image


def test_same_seeded_job_twice_gives_identical_bytes(
    engine: Any, make_job: Callable[..., Any]
) -> None:
    first = _only(engine.generate(make_job([("lora0", 1.0)])))
    engine.generate(make_job([("lora1", 1.0)]))
    assert _only(engine.generate(make_job([("lora0", 1.0)]))) == first


def test_each_adapter_kind_changes_the_image(engine: Any, make_job: Callable[..., Any]) -> None:
    prompt = "a photo of <cat-toy>"
    images = {
        "base": _only(engine.generate(make_job(prompt=prompt))),
        "lora": _only(engine.generate(make_job([("lora0", 1.0)], prompt=prompt))),
        "ti": _only(engine.generate(make_job([("ti-cat", 1.0)], prompt=prompt))),
        "two": _only(engine.generate(make_job([("lora0", 1.0), ("lora1", 0.5)], prompt=prompt))),
        "te": _only(engine.generate(make_job([("lora-te", 1.0)], prompt=prompt))),
    }
    assert len(set(images.values())) == len(images), "some adapter left the image unchanged"
    arrays = {k: png_pixels(v) for k, v in images.items()}
    for name in ("lora", "ti", "two", "te"):
        assert np.abs(arrays[name] - arrays["base"]).mean() > 0.01, name


def test_weights_matter(engine: Any, make_job: Callable[..., Any]) -> None:
    half = _only(engine.generate(make_job([("lora0", 1.0), ("lora1", 0.5)])))
    full = _only(engine.generate(make_job([("lora0", 1.0), ("lora1", 1.0)])))
    zero = _only(engine.generate(make_job([("lora0", 0.0)])))
    assert half != full
    assert zero == _only(engine.generate(make_job())), "weight 0 must equal the base model"


def test_lora_matches_diffusers_loader(
    engine: Any,
    make_job: Callable[..., Any],
    fresh_tiny_pipeline: Any,
    serving_adapters: dict[str, Path],
) -> None:
    pipe = fresh_tiny_pipeline
    pipe.load_lora_weights(str(serving_adapters["lora0"]), adapter_name="a")
    pipe.load_lora_weights(str(serving_adapters["lora1"]), adapter_name="b")
    pipe.load_lora_weights(str(serving_adapters["lora-te"]), adapter_name="c")
    pipe.load_lora_weights(str(serving_adapters["lora-te-trained"]), adapter_name="d")
    for names, weights in (
        (["a"], [1.0]),
        (["a", "b"], [1.0, 0.5]),
        (["c"], [1.0]),
        (["d"], [1.0]),
    ):
        pipe.set_adapters(names, weights)
        reference = diffusers_reference(pipe, "a photo of a cat")
        ours_name = {"a": "lora0", "b": "lora1", "c": "lora-te", "d": "lora-te-trained"}
        job = make_job([(ours_name[n], w) for n, w in zip(names, weights, strict=True)])
        ours = png_pixels(_only(engine.generate(job)))
        assert np.abs(ours - reference).max() <= QUANT, names


def test_textual_inversion_matches_diffusers_and_does_not_leak(
    engine: Any,
    make_job: Callable[..., Any],
    fresh_tiny_pipeline: Any,
    serving_adapters: dict[str, Path],
) -> None:
    prompt = "a <cat-toy> next to a <dog-toy>"
    plain_before = _only(engine.generate(make_job(prompt=prompt)))
    both = make_job([("ti-cat", 1.0), ("ti-dog", 1.0)], prompt=prompt)
    ours = png_pixels(_only(engine.generate(both)))
    pipe = fresh_tiny_pipeline
    from tuneforge.contract import TI_EMBEDDINGS

    pipe.load_textual_inversion(str(serving_adapters["ti-cat"] / TI_EMBEDDINGS))
    pipe.load_textual_inversion(str(serving_adapters["ti-dog"] / TI_EMBEDDINGS))
    reference = diffusers_reference(pipe, prompt)
    assert np.abs(ours - reference).max() <= QUANT
    # Without the adapters the tokens are plain text again, before and after eviction.
    assert _only(engine.generate(make_job(prompt=prompt))) == plain_before
    for name in ("lora2", "lora3", "lora4"):
        engine.generate(make_job([(name, 1.0)]))
    assert _only(engine.generate(make_job(prompt=prompt))) == plain_before


def test_lru_evicts_and_reattaches_exactly(engine: Any, make_job: Callable[..., Any]) -> None:
    references = {
        n: _only(engine.generate(make_job([(n, 1.0)]))) for n in ("lora5", "lora6", "lora7")
    }
    loads = engine.stats.slot_loads
    for name in ("lora8", "lora9", "lora5", "lora6", "lora7"):
        image = _only(engine.generate(make_job([(name, 1.0)])))
        if name in references:
            assert image == references[name]
    assert engine.stats.slot_loads - loads == 5, "every adapter should have been re-attached"
    assert len(engine.attached()) == 3


def test_batch_of_jobs_matches_single_runs(engine: Any, make_job: Callable[..., Any]) -> None:
    jobs = [make_job([("lora0", 1.0)], seed=s, prompt=p) for s, p in ((1, "a cat"), (2, "a dog"))]
    together = engine.generate_batch(jobs)
    for job, output in zip(jobs, together, strict=True):
        alone = png_pixels(_only(engine.generate(job)))
        assert np.abs(png_pixels(_only(output)) - alone).max() <= 2 * QUANT


def test_num_images_use_consecutive_seeds(engine: Any, make_job: Callable[..., Any]) -> None:
    output = engine.generate(make_job([("lora0", 1.0)], num_images=2, seed=40))
    assert output.error is None and len(output.images) == 2
    second = png_pixels(_only(engine.generate(make_job([("lora0", 1.0)], seed=41))))
    assert np.abs(png_pixels(output.images[1]) - second).max() <= 2 * QUANT


def test_prompt_too_long_is_422(engine: Any, make_job: Callable[..., Any]) -> None:
    output = engine.generate(make_job(prompt="cat " * 100))
    assert output.error is not None and output.error.status == 422
    assert "maxPromptTokens" in output.error.detail


@pytest.mark.parametrize(
    ("maker", "expected"),
    [
        ("rank", "rank 16 is over the memory budget"),
        ("shape", "does not fit this base model: its first layer whose shape differs is unet."),
        ("fingerprint", "fingerprint"),
        ("pickle", "non-safetensors"),
    ],
)
def test_incompatible_adapters_are_422(
    maker: str, expected: str, engine: Any, folder_source: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from tests.fixtures.serving import make_lora_adapter
    from tuneforge.contract import ADAPTER_MANIFEST, AdapterManifest
    from tuneforge_serving.jobs import GenerationJob

    folder = tmp_path / maker
    if maker == "rank":
        make_lora_adapter(tiny_model_dir, folder, seed=1, rank=16)
    elif maker == "shape":
        make_lora_adapter(tiny_model_dir, folder, seed=1, rank=4)
        _widen_first_down(folder / "pytorch_lora_weights.safetensors")
    else:
        fingerprint = "0123456789abcdef" if maker == "fingerprint" else None
        make_lora_adapter(tiny_model_dir, folder, seed=1, fingerprint=fingerprint)
        if maker == "pickle":
            manifest = AdapterManifest.model_validate_json((folder / ADAPTER_MANIFEST).read_text())
            manifest.files.append("extra.bin")
            (folder / "extra.bin").write_bytes(b"not loaded")
            (folder / ADAPTER_MANIFEST).write_text(manifest.model_dump_json())
    folder_source.add(f"bad-{maker}", folder)
    job = GenerationJob(
        prompt="x",
        adapters=[(folder_source.resolve(f"bad-{maker}"), 1.0)],
        steps=1,
        width=64,
        height=64,
    )
    output = engine.generate(job)
    assert output.error is not None and output.error.status == 422
    assert expected in output.error.detail
    assert f"bad-{maker}" in output.error.detail


def test_two_adapters_with_one_token_are_refused(
    engine: Any,
    folder_source: Any,
    make_job: Callable[..., Any],
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    from tests.fixtures.serving import make_ti_adapter

    folder_source.add(
        "ti-cat-2",
        make_ti_adapter(tiny_model_dir, tmp_path / "c2", seed=9, tokens={"<cat-toy>": 1}),
    )
    output = engine.generate(make_job([("ti-cat", 1.0), ("ti-cat-2", 1.0)], prompt="a <cat-toy>"))
    assert output.error is not None and output.error.status == 422
    assert "<cat-toy>" in output.error.detail


def test_a_batch_of_different_adapters_runs_one_call_per_choice_without_mixing(
    engine: Any, make_job: Callable[..., Any]
) -> None:
    jobs = [make_job([("lora0", 1.0)], seed=3), make_job(seed=4), make_job([("lora0", 1.0)])]
    assert engine.mixing is None
    requests = engine.run_requests(jobs)
    for job, request in zip(jobs, requests, strict=True):
        assert _only(request.output) == _only(engine.generate(job))
        assert request.images[0].shape == (64, 64, 3)


def test_stats_count_requests_images_and_time(engine: Any, make_job: Callable[..., Any]) -> None:
    before = (engine.stats.requests, engine.stats.images, engine.stats.inference_seconds)
    engine.generate_batch([make_job(num_images=2), make_job(seed=5)])
    after = (engine.stats.requests, engine.stats.images, engine.stats.inference_seconds)
    assert after[0] - before[0] == 2 and after[1] - before[1] == 3
    assert after[2] > before[2]


def _widen_first_down(path: Path) -> None:
    """Give the file's first A tensor 8 more input columns: a layer of another base model."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    first = sorted(key for key in tensors if key.endswith(("lora_A.weight", "lora.down.weight")))[0]
    tensors[first] = torch.cat([tensors[first], torch.zeros(tensors[first].shape[0], 8)], dim=1)
    save_file(tensors, str(path))
