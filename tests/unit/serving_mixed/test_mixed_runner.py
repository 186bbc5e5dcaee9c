"""Mixed batches on a real engine: fallbacks, slot splits, errors, images per request."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.serving import FolderAdapterSource, build_engine, png_pixels

LEVEL = 1.0 / 255 + 1e-6
PREFIX = "tuneforge_serving"


def _assert_solo_equal(engine: Any, outputs: list[Any], jobs: list[Any]) -> None:
    for position, (output, job) in enumerate(zip(outputs, jobs, strict=True)):
        assert output.error is None, (position, output.error)
        solo = engine.generate(job)
        assert len(output.images) == len(solo.images) == job.num_images
        for ours, alone in zip(output.images, solo.images, strict=True):
            difference = np.abs(png_pixels(ours) - png_pixels(alone)).max()
            assert difference <= LEVEL, f"request {position} differs from its solo run"


def test_three_loras_fall_back_to_their_own_batch_visibly(
    mixed_engine: Any, make_job: Callable[..., Any]
) -> None:
    metrics = mixed_engine.mixing.metrics
    labels = {"reason": "too_many_loras"}
    before = metrics.value(f"{PREFIX}_mixed_fallbacks_total", labels)
    jobs = [
        make_job([("lora0", 1.0), ("lora1", 0.5), ("lora2", 1.0)], seed=3),
        make_job([("lora0", 1.0)], seed=4),
    ]
    outputs = mixed_engine.generate_batch(jobs)
    assert metrics.value(f"{PREFIX}_mixed_fallbacks_total", labels) == before + 1
    _assert_solo_equal(mixed_engine, outputs, jobs)


def test_more_adapters_than_slots_split_the_batch_and_stay_exact(
    mixed_engine: Any, make_job: Callable[..., Any]
) -> None:
    metrics = mixed_engine.mixing.metrics
    before = metrics.value(f"{PREFIX}_mixed_slot_splits_total")
    jobs = [
        make_job([("lora0", 1.0), ("lora1", 1.0)], seed=1),
        make_job([("lora2", 0.8), ("lora3", 1.0)], seed=2),
        make_job([("lora4", 1.0)], seed=3),
        make_job([("lora5", 1.0), ("ti-dog", 1.0)], prompt="a <dog-toy> on grass", seed=4),
    ]
    outputs = mixed_engine.generate_batch(jobs)
    assert metrics.value(f"{PREFIX}_mixed_slot_splits_total") >= before + 1
    _assert_solo_equal(mixed_engine, outputs, jobs)


def test_several_images_per_request_use_consecutive_seeds(
    mixed_engine: Any, make_job: Callable[..., Any]
) -> None:
    jobs = [make_job([("lora6", 1.0)], seed=20, num_images=2), make_job(seed=30, num_images=3)]
    outputs = mixed_engine.generate_batch(jobs)
    _assert_solo_equal(mixed_engine, outputs, jobs)
    assert outputs[0].images[0] != outputs[0].images[1]


def test_a_bad_request_fails_alone(mixed_engine: Any, make_job: Callable[..., Any]) -> None:
    too_long = " ".join(["cat"] * 120)
    outputs = mixed_engine.generate_batch(
        [make_job([("lora0", 1.0)], prompt=too_long), make_job([("lora1", 1.0)], seed=5)]
    )
    assert outputs[0].error is not None and outputs[0].error.status == 422
    assert "maxPromptTokens" in outputs[0].error.detail
    assert outputs[1].error is None and len(outputs[1].images) == 1


def test_outputs_report_adapters_and_timings(
    mixed_engine: Any, make_job: Callable[..., Any]
) -> None:
    (output,) = mixed_engine.generate_batch([make_job([("lora0", 0.5), ("ti-cat", 1.0)])])
    assert [(a["name"], a["version"], a["weight"]) for a in output.adapters] == [
        ("lora0", 1, 0.5),
        ("ti-cat", 1, 1.0),
    ]
    assert output.adapters[1]["tokens"] == ["<cat-toy>"]
    assert {"stage_ms", "queue_ms", "swap_ms", "inference_ms"} <= set(output.timings)


def test_jobs_of_different_shapes_are_refused(
    mixed_engine: Any, make_job: Callable[..., Any]
) -> None:
    with pytest.raises(ValueError, match="one shape key"):
        mixed_engine.generate_batch([make_job(), make_job(steps=4)])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_fused_lora_layer_makes_requests_fall_back_to_calls_of_their_own(
    tiny_model_dir: Path,
    folder_source: FolderAdapterSource,
    tmp_path: Path,
    make_job: Callable[..., Any],
) -> None:
    from tuneforge_serving.lora_slots import slot_name

    engine = build_engine(tiny_model_dir, folder_source, tmp_path, 2, mixed_batching={})
    metrics = engine.mixing.metrics
    jobs = [make_job([("lora0", 1.0)], seed=9), make_job([("lora1", 1.0)], seed=9)]
    mixed = engine.generate_batch(jobs)
    assert metrics.value(f"{PREFIX}_mixed_fallbacks_total", {"reason": "fused"}) == 0
    assert metrics.value(f"{PREFIX}_mixed_call_images_count") == 1, "one mixed call"
    layer = next(iter(engine.lora_slots.layers.values()))
    layer.merge(adapter_names=[slot_name(0)])
    outputs = engine.generate_batch(jobs)
    assert [o.error for o in outputs] == [None, None]
    assert all(len(o.images) == 1 for o in outputs + mixed)
    assert metrics.value(f"{PREFIX}_mixed_fallbacks_total", {"reason": "fused"}) == 2


def test_a_single_choice_batch_activates_the_slots_without_routing(
    mixed_engine: Any, make_job: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_routing(*args: Any) -> None:
        raise AssertionError("one shared choice must not be routed per sample")

    jobs = [make_job([("lora3", 0.5)], seed=s) for s in (61, 62)]
    with monkeypatch.context() as patch:
        patch.setattr(mixed_engine.mixing, "routed", no_routing)
        together = mixed_engine.generate_batch(jobs)
    _assert_solo_equal(mixed_engine, together, jobs)


def test_one_token_two_concepts_in_one_batch_each_prompt_gets_its_own(
    mixed_engine: Any,
    folder_source: FolderAdapterSource,
    tiny_model_dir: Path,
    tmp_path: Path,
    make_job: Callable[..., Any],
) -> None:
    from tests.fixtures.serving import make_ti_adapter

    if "ti-cat-b" not in folder_source.versions:
        folder = make_ti_adapter(tiny_model_dir, tmp_path / "b", seed=99, tokens={"<cat-toy>": 1})
        folder_source.add("ti-cat-b", folder)
    prompt = "a photo of <cat-toy>"
    jobs = [
        make_job([("ti-cat", 1.0)], prompt=prompt, seed=5),
        make_job([("ti-cat-b", 1.0)], prompt=prompt, seed=5),
        make_job([("ti-cat", 1.0), ("ti-cat-b", 1.0)], prompt=prompt, seed=5),
    ]
    outputs = mixed_engine.generate_batch(jobs)
    assert outputs[2].error is not None and outputs[2].error.status == 422
    assert "both define the token" in outputs[2].error.detail
    _assert_solo_equal(mixed_engine, outputs[:2], jobs[:2])
    first, second = (png_pixels(o.images[0]) for o in outputs[:2])
    assert np.abs(first - second).mean() > 0.01, "both prompts got the same concept"


def test_without_classifier_free_guidance_the_routing_still_matches(
    mixed_engine: Any, make_job: Callable[..., Any]
) -> None:
    jobs = [
        make_job([("lora7", 1.0)], guidance_scale=1.0, seed=41),
        make_job(guidance_scale=1.0, seed=42),
        make_job([("lora0", 0.5), ("lora7", 1.0)], guidance_scale=1.0, seed=43),
    ]
    _assert_solo_equal(mixed_engine, mixed_engine.generate_batch(jobs), jobs)
