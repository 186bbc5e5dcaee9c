"""DreamBooth → LoRA on the tiny model, real diffusers/peft, embedded MLflow, no Ray: a full
DreamBooth (UNet + text encoder) with `extractLora` leaves, in its final checkpoint only, an
extracted LoRA on every Linear and Conv2d (LoCon) whose image is closer to the full
fine-tune's image than the base's is, and closer than its attention-only part; it is
registered as `<registeredModel>-lora` beside the full weights with the per-layer errors in
the run, and the serving engine hot-swaps it to the image plain diffusers renders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from safetensors.torch import load_file, save_file

from tests.fixtures.assets import load_tiny_pipeline
from tests.fixtures.serving import build_engine, diffusers_reference, png_pixels
from tests.fixtures.trainer import (
    TINY_INSTANCE_PROMPT,
    make_trainer_job,
    render_tiny,
    run_worker_locally,
)
from tuneforge.contract import (
    ADAPTER_MANIFEST,
    DEFAULT_LORA_TARGETS,
    DEFAULT_TEXT_ENCODER_LORA_TARGETS,
    LORA_WEIGHTS,
)

RANK = 8  # the test engine's slot rank (build_engine)
QUANT = 1.0 / 255 + 1e-6  # one 8-bit level: PNG rounding against diffusers' float image
ATTENTION = (*DEFAULT_LORA_TARGETS, *DEFAULT_TEXT_ENCODER_LORA_TARGETS)
CONV = "unet.down_blocks.0.resnets.0.conv1"


def _attention_only(extracted_dir: Path, out_dir: Path) -> Path:
    """The extracted file's attention-projection pairs alone: what extraction wrote before it
    covered every layer (each layer's SVD is its own, and the rank is the same)."""
    tensors = load_file(str(extracted_dir / LORA_WEIGHTS))
    kept = {
        key: tensor
        for key, tensor in tensors.items()
        if key.rsplit(".lora_", 1)[0].endswith(tuple(f".{t}" for t in ATTENTION))
    }
    assert 0 < len(kept) < len(tensors)
    out_dir.mkdir()
    save_file(kept, str(out_dir / LORA_WEIGHTS))
    return out_dir


def test_extracted_lora_is_close_to_the_full_fine_tune_registered_and_served(
    tiny_model_dir: Path, tiny_dataset_dir: Path, tmp_path: Path
) -> None:
    from tuneforge.registry import AdapterRegistry
    from tuneforge.settings import Settings
    from tuneforge_serving.jobs import GenerationJob
    from tuneforge_trainer.export import read_manifest
    from tuneforge_trainer.plan import job_uid
    from tuneforge_trainer.runner import register, register_extracted_lora
    from tuneforge_trainer.tracking import RunTracker, find_or_create_run
    from tuneforge_trainer.validation import load_pipeline_with_adapter

    job = make_trainer_job(
        "dreambooth",
        tiny_model_dir,
        tiny_dataset_dir,
        name="db-extract",
        training={"maxSteps": 2, "learningRate": 1e-3},
        dreambooth={"trainTextEncoder": True, "extractLora": {"rank": RANK}},
    )
    _, context = run_worker_locally(job, tmp_path / "run")
    first, last = context.checkpoints()
    assert not (first / "extracted_lora").exists(), "extraction is for the final export only"
    extracted_dir = last / "extracted_lora"
    assert sorted(p.name for p in extracted_dir.iterdir()) == [LORA_WEIGHTS, ADAPTER_MANIFEST]
    manifest = read_manifest(extracted_dir)
    assert manifest.lora is not None and not manifest.full_model
    assert (manifest.lora.rank, manifest.lora.alpha) == (RANK, float(RANK))
    assert manifest.lora.text_encoder and manifest.files == [LORA_WEIGHTS]
    assert manifest.base_model_fingerprint == read_manifest(last / "adapter").base_model_fingerprint

    report = json.loads((last / "lora_extraction" / "layers.json").read_text())
    extracted = [row for row in report["layers"] if row["extracted"]]
    left_out = [row for row in report["layers"] if not row["extracted"]]
    assert extracted and all(
        row["rank"] == min(RANK, row["shape"][0], math.prod(row["shape"][1:])) for row in extracted
    ), "rank 8, or the layer's own when smaller (conv_out: 4 outputs)"
    assert all(0 <= row["relative_error"] < 1 for row in extracted)
    names = {row["name"] for row in extracted}
    for layer in (
        f"{CONV}.weight",
        "unet.down_blocks.0.resnets.0.conv2.weight",
        "unet.conv_in.weight",
    ):
        assert layer in names, f"{layer}: a conv change is extracted"
    assert any(n.endswith(".ff.net.0.proj.weight") for n in names), "feed-forward too"
    assert any(n.endswith(".ff.net.2.weight") for n in names)
    assert any(n.endswith(".mlp.fc1.weight") for n in names), "text-encoder MLP too"
    assert left_out and all(
        len(row["shape"]) == 1 or "embedding" in row["name"] for row in left_out
    ), "only biases, norms and embeddings are left out"
    tensors = load_file(str(extracted_dir / LORA_WEIGHTS))
    assert tensors[f"{CONV}.lora_A.weight"].shape[:2] == (RANK, 32)
    assert tensors[f"{CONV}.lora_A.weight"].shape[2:] == (3, 3)
    assert tensors[f"{CONV}.lora_B.weight"].shape[1:] == (RANK, 1, 1)

    base_image = render_tiny(load_tiny_pipeline(tiny_model_dir))
    full_image = render_tiny(load_pipeline_with_adapter(tiny_model_dir, last / "adapter"))
    lora_pipe = load_tiny_pipeline(tiny_model_dir)
    lora_pipe.load_lora_weights(str(extracted_dir))
    conv = lora_pipe.unet.get_submodule(CONV.removeprefix("unet."))
    assert conv.lora_A["default_0"].weight.shape == tensors[f"{CONV}.lora_A.weight"].shape, (
        "diffusers loads the conv pairs"
    )
    lora_image = render_tiny(lora_pipe)
    attention_pipe = load_tiny_pipeline(tiny_model_dir)
    attention_pipe.load_lora_weights(str(_attention_only(extracted_dir, tmp_path / "attn")))
    attention_image = render_tiny(attention_pipe)
    base_gap = float(np.abs(base_image - full_image).mean())
    lora_gap = float(np.abs(lora_image - full_image).mean())
    attention_gap = float(np.abs(attention_image - full_image).mean())
    print(
        f"mean |pixel| to the full fine-tune: base {base_gap:.5f}, attention-only LoRA "
        f"{attention_gap:.5f}, every-layer LoRA {lora_gap:.5f}"
    )
    assert base_gap > 1e-3, "the fine-tune must change the image for the comparison to mean much"
    assert attention_gap < base_gap
    assert lora_gap < attention_gap

    # Registered beside the full weights; the errors in the job's run.
    settings = Settings(home=tmp_path / "home")
    tracking_uri = settings.embedded_tracking_uri()
    run_id = find_or_create_run(tracking_uri, job, job_uid(job), settings)
    tracker = RunTracker(tracking_uri, run_id, settings)
    full = register(settings, run_id, last / "adapter", read_manifest(last / "adapter"), job)
    lora = register_extracted_lora(settings, tracker, last, job, full)
    assert lora is not None
    assert (full.name, lora.name) == ("db-extract-model", "db-extract-model-lora")
    assert lora.source.rstrip("/").endswith("/extracted_lora") and lora.source != full.source
    again = register_extracted_lora(settings, tracker, last, job, full)
    assert again is not None and again.version == lora.version, "once per job uid"

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    metrics = client.get_run(run_id).data.metrics
    errors = [row["relative_error"] for row in extracted]
    assert abs(metrics["lora_extraction/relative_error_max"] - max(errors)) < 1e-9
    assert abs(metrics["lora_extraction/relative_error_mean"] - np.mean(errors)) < 1e-9
    assert metrics["lora_extraction/rank"] == RANK
    artifacts = {a.path for a in client.list_artifacts(run_id, "lora_extraction")}
    assert artifacts == {"lora_extraction/layers.json", "lora_extraction/layers.csv"}
    version = client.get_model_version(lora.name, str(lora.version))
    assert version.tags["tuneforge.extracted_from"] == f"db-extract-model/{full.version}"
    assert "extracted by SVD" in version.description
    card = version.tags["tuneforge.model_card"]
    assert card.endswith("/extracted_lora-model-card/README.md"), card
    full_card = client.get_model_version(full.name, str(full.version)).tags["tuneforge.model_card"]
    assert full_card.endswith("/model-card/README.md") and full_card != card

    # Served by hot-swap: the engine's image is plain diffusers' image of the same LoRA.
    registry = AdapterRegistry(settings)
    engine = build_engine(tiny_model_dir, registry, tmp_path / "engine-cache", 1)
    served_job = GenerationJob(
        adapters=[(registry.resolve(f"{lora.name}/{lora.version}"), 1.0)],
        prompt=TINY_INSTANCE_PROMPT,
        steps=3,
        width=64,
        height=64,
        seed=11,
    )
    output = engine.generate(served_job)
    assert output.error is None, output.error
    served = png_pixels(output.images[0])
    reference = diffusers_reference(lora_pipe, TINY_INSTANCE_PROMPT)
    print(f"served vs diffusers, every layer: max |pixel| {np.abs(served - reference).max():.5f}")
    assert np.abs(served - reference).max() <= QUANT
    assert (
        np.abs(
            served - diffusers_reference(load_tiny_pipeline(tiny_model_dir), TINY_INSTANCE_PROMPT)
        ).mean()
        > 1e-3
    )
