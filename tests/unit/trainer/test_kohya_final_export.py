"""`output.formats: [diffusers, kohya]` converts the LoRA to the kohya layout once, for the
final export (the one registered), not at every checkpoint: an intermediate checkpoint's
adapter holds the diffusers file only and says so in its manifest; the last checkpoint's and
the registered version's hold both, with the manifest the final export always had."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.trainer import make_trainer_job, run_worker_locally
from tuneforge.contract import ADAPTER_MANIFEST, KOHYA_LORA_WEIGHTS, LORA_WEIGHTS


def test_kohya_copy_only_in_the_final_export_and_the_registered_version(
    tiny_model_dir: Path, tiny_dataset_dir: Path, tmp_path: Path
) -> None:
    from tuneforge.registry import AdapterRegistry
    from tuneforge.settings import Settings
    from tuneforge_trainer.export import read_manifest
    from tuneforge_trainer.plan import job_uid
    from tuneforge_trainer.runner import register
    from tuneforge_trainer.tracking import find_or_create_run

    job = make_trainer_job(
        "lora",
        tiny_model_dir,
        tiny_dataset_dir,
        name="kohya-final",
        training={"maxSteps": 2, "checkpointEverySteps": 1},
        lora={"rank": 4, "alpha": 8},
        output={"registeredModel": "kohya-final", "formats": ["diffusers", "kohya"]},
    )
    _, context = run_worker_locally(job, tmp_path / "run")
    checkpoints = context.checkpoints()
    assert [p.name for p in checkpoints] == ["checkpoint_00000001", "checkpoint_00000002"]

    for intermediate in checkpoints[:-1]:
        adapter = intermediate / "adapter"
        assert sorted(p.name for p in adapter.iterdir()) == [LORA_WEIGHTS, ADAPTER_MANIFEST]
        manifest = json.loads((adapter / ADAPTER_MANIFEST).read_text())
        assert manifest["files"] == [LORA_WEIGHTS]
        assert manifest.get("formats", ["diffusers"]) == ["diffusers"]

    final = checkpoints[-1] / "adapter"
    final_manifest = read_manifest(final)
    assert final_manifest.files == [LORA_WEIGHTS, KOHYA_LORA_WEIGHTS]
    assert [f.value for f in final_manifest.formats] == ["diffusers", "kohya"]
    assert (final / KOHYA_LORA_WEIGHTS).stat().st_size > 0
    assert final_manifest.steps == 2

    settings = Settings(home=tmp_path / "home")
    tracking_uri = settings.embedded_tracking_uri()
    run_id = find_or_create_run(tracking_uri, job, job_uid(job), settings)
    registered = register(settings, run_id, final, final_manifest, job)
    registry = AdapterRegistry(settings)
    fetched = registry.fetch(registry.resolve(f"kohya-final/{registered.version}"), tmp_path / "c")
    assert sorted(p.name for p in fetched.path.iterdir()) == sorted(
        [LORA_WEIGHTS, KOHYA_LORA_WEIGHTS, ADAPTER_MANIFEST]
    )
    assert fetched.manifest == final_manifest
    assert (fetched.path / KOHYA_LORA_WEIGHTS).read_bytes() == (
        final / KOHYA_LORA_WEIGHTS
    ).read_bytes()
