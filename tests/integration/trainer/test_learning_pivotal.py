"""Pivotal tuning (under FSDP2) learns the subject: the loss on held-out subject images drops.

Like `test_learning.py`: in-process, world size 1 in a one-member gloo group (no Ray;
`test_learning_sharded.py` trains on two spawned ranks), scored by the denoising loss on held-out subject images
training never saw, at fixed noise and timesteps (`tests/fixtures/heldout.py`). Training
prompts are `a photo of <sks-toy>` (the captions do not name the token), so the trained
adapter is scored with that prompt, and against the lower of the base's two scores (its
captions, and `a photo of ball`, what the token encodes before training). Training under
FSDP2 also covers the two parameter groups' sharded optimizer and the gathered export of
the LoRA and the new rows.

Measured (30 steps: 5 embeddings-only, then both; LoRA rank 8 at lr 1e-2, one vector from
`ball` at lr 0.2, cosine, batch 3, FSDP2; training seeds 0, 1, 2 on the busy 2-core box):
base 1.0772 (`a photo of ball`; the captions score 1.0826) -> 0.9657, 0.9673, 0.9587
(10.4 %, 10.2 %, 11.0 % lower; 35-117 s per run under load). The test trains seed 0 and
asserts at least 6 % lower: under two thirds of the smallest gain, 4 points below it.
"""

from __future__ import annotations

import pytest

from tests.fixtures.heldout import heldout_captions, heldout_denoising_loss
from tests.fixtures.trainer import make_trainer_job, run_worker_locally

MIN_GAIN = 0.06
"""The trained held-out loss must be at least 6 % below the base's (measured: 10.2-11.0 %)."""


@pytest.mark.slow
def test_pivotal_tuning_under_fsdp2_lowers_the_denoising_loss_on_held_out_subject_images(
    single_process_group,
    tiny_model_dir,
    tiny_dataset_dir,
    heldout_subject_dir,
    heldout_base_losses,
    tmp_path,
):
    from tuneforge_trainer.validation import load_pipeline_with_adapter

    job = make_trainer_job(
        "pivotal",
        tiny_model_dir,
        tiny_dataset_dir,
        training={
            "maxSteps": 30,
            "learningRate": 1e-2,
            "checkpointEverySteps": 30,
            "lrScheduler": "cosine",
            "cacheLatents": True,
            "batchSize": 3,
        },
        textualInversion={"placeholderToken": "<sks-toy>", "initializerToken": "ball"},
        lora={"rank": 8, "alpha": 8.0},
        pivotal={"embeddingLearningRate": 0.2, "embeddingWarmupSteps": 5},
        resources={"strategy": "fsdp"},
    )
    _, context = run_worker_locally(job, tmp_path)
    trained = load_pipeline_with_adapter(tiny_model_dir, context.checkpoints()[-1] / "adapter")
    prompts = ["a photo of <sks-toy>"] * len(heldout_captions(heldout_subject_dir))
    after = heldout_denoising_loss(trained, heldout_subject_dir, prompts)
    before = min(heldout_base_losses["captions"], heldout_base_losses["initializer"])
    print(f"held-out loss before={before:.4f} after={after:.4f} ({1 - after / before:.1%} lower)")
    assert after < (1 - MIN_GAIN) * before
