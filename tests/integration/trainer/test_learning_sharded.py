"""DreamBooth (under DeepSpeed ZeRO-3) and textual inversion (under FSDP2) learn the subject.

Like `test_learning.py` (LoRA): in-process, world size 1 in a one-member gloo group (no Ray),
scored by the denoising loss on held-out subject images training never saw, at fixed noise
and timesteps, base model against trained result (`tests/fixtures/heldout.py`). Each method
trains under a sharded strategy, so the learning assertion also covers the strategy's
gathered export (DeepSpeed's ZeRO-3 partitions, FSDP2's DTensor shards) at no extra
training cost. The world-size-2 sharding itself is checked in `test_precision_matrix.py`.

Measured on the busy 2-core box, training seeds 0-2 (held-out loss; base 1.0826, captions):
- DreamBooth, full UNet + prior preservation, 12 steps, lr 5e-4 cosine, batch 3, ZeRO-3:
  1.0826 -> 0.7238, 0.7255, 0.7262 (33.1 %, 33.0 %, 32.9 % lower; earlier single-process runs
  with 15 steps: 38.8 %, 38.5 %). The test asserts at least 20 % lower.
- Textual inversion, one vector from `ball`, 30 steps, lr 0.2 cosine, batch 3, FSDP2:
  base 1.0772 (`a photo of ball`, what the token encodes before training) -> 1.0703, 1.0707,
  1.0711 (gains 0.64 %, 0.60 %, 0.57 %; earlier single-process runs: 0.6 %, 0.7 %). The test
  asserts at least 0.3 % lower. The gain is small because textual inversion can only change
  the text conditioning, and the tiny model's random UNet barely uses it: its held-out loss
  moves by about as much between unrelated prompts. The evaluation is deterministic (fixed
  noise), the spread is training's alone, and the threshold is half the smallest gain.
"""

from __future__ import annotations

import pytest

from tests.fixtures.heldout import heldout_captions, heldout_denoising_loss
from tests.fixtures.trainer import make_trainer_job, run_worker_locally

DREAMBOOTH_MIN_GAIN = 0.20
TEXTUAL_INVERSION_MIN_GAIN = 0.003


def _trained_heldout_loss(job, model_dir, heldout_dir, storage, prompt: str | None) -> float:
    """Train `job` in-process and score its exported adapter on the held-out images."""
    from tuneforge_trainer.validation import load_pipeline_with_adapter

    _, context = run_worker_locally(job, storage)
    trained = load_pipeline_with_adapter(model_dir, context.checkpoints()[-1] / "adapter")
    captions = heldout_captions(heldout_dir)
    prompts = captions if prompt is None else [prompt] * len(captions)
    return heldout_denoising_loss(trained, heldout_dir, prompts)


@pytest.mark.slow
def test_dreambooth_under_zero3_lowers_the_denoising_loss_on_held_out_subject_images(
    single_process_group,
    tiny_model_dir,
    tiny_dataset_dir,
    heldout_subject_dir,
    heldout_base_losses,
    tmp_path,
):
    job = make_trainer_job(
        "dreambooth",
        tiny_model_dir,
        tiny_dataset_dir,
        training={
            "maxSteps": 12,
            "learningRate": 5e-4,
            "checkpointEverySteps": 12,
            "lrScheduler": "cosine",
            "lrWarmupSteps": 3,
            "cacheLatents": True,
            "batchSize": 3,
        },
        dreambooth={"priorPreservation": True},
        resources={"strategy": "deepspeed"},
    )
    after = _trained_heldout_loss(job, tiny_model_dir, heldout_subject_dir, tmp_path, None)
    before = heldout_base_losses["captions"]
    print(f"held-out loss before={before:.4f} after={after:.4f} ({1 - after / before:.1%} lower)")
    assert after < (1 - DREAMBOOTH_MIN_GAIN) * before


@pytest.mark.slow
def test_textual_inversion_under_fsdp2_lowers_the_denoising_loss_on_held_out_subject_images(
    single_process_group,
    tiny_model_dir,
    tiny_dataset_dir,
    heldout_subject_dir,
    heldout_base_losses,
    tmp_path,
):
    job = make_trainer_job(
        "textualInversion",
        tiny_model_dir,
        tiny_dataset_dir,
        training={
            "maxSteps": 30,
            "learningRate": 0.2,
            "checkpointEverySteps": 30,
            "lrScheduler": "cosine",
            "lrWarmupSteps": 5,
            "cacheLatents": True,
            "batchSize": 3,
        },
        textualInversion={
            "placeholderToken": "<sks-toy>",
            "initializerToken": "ball",  # so the base's score is `a photo of ball`'s
            "numVectors": 1,
        },
        resources={"strategy": "fsdp"},
    )
    prompt = "a photo of <sks-toy>"
    after = _trained_heldout_loss(job, tiny_model_dir, heldout_subject_dir, tmp_path, prompt)
    before = heldout_base_losses["initializer"]
    print(f"held-out loss before={before:.4f} after={after:.4f} ({1 - after / before:.2%} lower)")
    assert after < (1 - TEXTUAL_INVERSION_MIN_GAIN) * before
