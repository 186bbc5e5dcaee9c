"""LoRA actually learns the subject: the loss on subject images it never saw drops.

In-process (the worker loop at world size 1, no Ray). The held-out images are the same
synthetic subject drawn with another seed (`cached_heldout_subject()`: other backgrounds and
jitter, two new pose/position combinations); training sees only the seed-0 dataset. The
denoising loss is measured on them at fixed noise and timesteps (the same seeds for the base
model and the trained one), with each image's caption, through a plain diffusers pipeline
with the exported LoRA loaded (`tests/fixtures/heldout.py`).

Measured (60 steps, lr 1e-2 cosine, rank 8, batch 3; training seeds 0, 1, 2 on the busy
2-core box): held-out loss 1.0826 -> 0.7867, 0.8463, 0.8239 (27.3 %, 21.8 %, 23.9 % lower).
The test asserts at least 15 % lower: about two thirds of the smallest gain, 7 points below.
The other methods (DreamBooth under DeepSpeed, textual inversion under FSDP2) are in
`test_learning_sharded.py`.
"""

from __future__ import annotations

import pytest

from tests.fixtures.heldout import heldout_captions, heldout_denoising_loss
from tests.fixtures.trainer import make_trainer_job, run_worker_locally

MIN_GAIN = 0.15
"""The trained held-out loss must be at least 15 % below the base's (measured: 21.8-27.3 %)."""


@pytest.mark.slow
def test_lora_lowers_the_denoising_loss_on_held_out_subject_images(
    tiny_model_dir, tiny_dataset_dir, heldout_subject_dir, heldout_base_losses, tmp_path
):
    from tuneforge_trainer.validation import load_pipeline_with_adapter

    job = make_trainer_job(
        "lora",
        tiny_model_dir,
        tiny_dataset_dir,
        training={
            "maxSteps": 60,
            "learningRate": 1e-2,
            "checkpointEverySteps": 60,
            "lrScheduler": "cosine",
            "lrWarmupSteps": 5,
            "cacheLatents": True,
            "batchSize": 3,
        },
        lora={"rank": 8, "alpha": 8.0},
    )
    _, context = run_worker_locally(job, tmp_path)
    trained = load_pipeline_with_adapter(tiny_model_dir, context.checkpoints()[-1] / "adapter")
    captions = heldout_captions(heldout_subject_dir)
    after = heldout_denoising_loss(trained, heldout_subject_dir, captions)
    before = heldout_base_losses["captions"]
    print(f"held-out loss before={before:.4f} after={after:.4f} ({1 - after / before:.1%} lower)")
    assert after < (1 - MIN_GAIN) * before
