"""`tuneforge adapters import/export` against a real `mlflow server` with S3 artifacts.

Import registers a version with lineage tags; the registered adapter, fetched back from
the registry and served by the engine, renders what diffusers renders from the original
file; a kohya export of it, imported again, renders the same image (round trip).
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.fixtures.serving import diffusers_reference, make_lora_adapter, png_pixels
from tests.unit.adapters.kohya_inputs import write_kohya
from tuneforge.adapters import import_adapter
from tuneforge.client.client import Client
from tuneforge.contract import Tag
from tuneforge.registry import AdapterRegistry

pytestmark = pytest.mark.integration
QUANT = 1.0 / 255 + 1e-6


def _render(model_dir: Path, registry: AdapterRegistry, ref: str, cache: Path) -> Any:
    from tests.fixtures.serving import build_engine
    from tuneforge_serving.jobs import GenerationJob

    engine = build_engine(model_dir, registry, cache / "engine", 2)  # the registry as source
    job = GenerationJob(
        adapters=[(registry.resolve(ref), 1.0)],
        prompt="a photo of a cat",
        steps=3,
        width=64,
        height=64,
        seed=11,
    )
    output = engine.generate(job)
    assert output.error is None, output.error
    return png_pixels(output.images[0])


@pytest.fixture(scope="module")
def kohya_file(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kohya-it")
    peft_dir = make_lora_adapter(
        tiny_model_dir, root / "peft", seed=33, rank=4, alpha=2.0, text_encoder=True
    )
    return write_kohya(peft_dir, root / "style.safetensors", alpha=2.0)


def test_import_registers_with_lineage_and_serves_like_diffusers(
    registry_settings: Any,
    kohya_file: Path,
    tiny_model_dir: Path,
    fresh_tiny_pipeline: Any,
    tmp_path: Path,
) -> None:
    name = f"imp-{uuid.uuid4().hex[:6]}"
    version = import_adapter(
        kohya_file, name, base_model=str(tiny_model_dir), alias="prod", settings=registry_settings
    )
    registry = AdapterRegistry(registry_settings)
    resolved = registry.resolve(f"{name}@prod")
    assert resolved.version == version.version == 1
    with registry.store.client() as client:
        tags = client.get_model_version(name, "1").tags
        run_tags = client.get_run(version.run_id).data.tags
    sha = hashlib.sha256(kohya_file.read_bytes()).hexdigest()
    for found in (tags, run_tags):
        assert found[Tag.SOURCE] == "import"
        assert found[Tag.SOURCE_SHA256] == sha
        assert found[Tag.SOURCE_LAYOUT] == "kohya"
    assert tags[Tag.METHOD] == "lora"
    ours = _render(tiny_model_dir, registry, f"{name}@prod", tmp_path)
    fresh_tiny_pipeline.load_lora_weights(str(kohya_file), adapter_name="orig")
    reference = diffusers_reference(fresh_tiny_pipeline, "a photo of a cat")
    assert np.abs(ours - reference).max() <= QUANT


def test_kohya_export_then_import_renders_the_same_image(
    registry_settings: Any,
    kohya_file: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tuneforge.cli.main import app

    name = f"trip-{uuid.uuid4().hex[:6]}"
    client = Client(registry_settings, backend="local")
    client.import_adapter(kohya_file, name, base_model=str(tiny_model_dir))
    exported = client.export_adapter(f"{name}/1", tmp_path / "exported.safetensors", "kohya")
    from safetensors import safe_open

    with safe_open(str(exported), framework="pt") as handle:
        keys = list(handle.keys())  # noqa: SIM118
    assert any(k.startswith("lora_unet_") for k in keys)
    assert any(k.startswith("lora_te_") for k in keys)
    assert any(k.endswith(".alpha") for k in keys)
    # The same file, imported again through the CLI, is version 2 and renders the same.
    for key, value in {
        "TUNEFORGE_HOME": str(registry_settings.home),
        "TUNEFORGE_MLFLOW_TRACKING_URI": registry_settings.mlflow_tracking_uri,
        "TUNEFORGE_S3_ENDPOINT": registry_settings.s3_endpoint,
        "TUNEFORGE_S3_ACCESS_KEY": registry_settings.s3_access_key,
        "TUNEFORGE_S3_SECRET_KEY": registry_settings.s3_secret_key.get_secret_value(),
    }.items():
        monkeypatch.setenv(key, str(value))
    result = CliRunner().invoke(
        app,
        ["adapters", "import", str(exported), "--name", name, "--base-model", str(tiny_model_dir)],
    )
    assert result.exit_code == 0, result.output
    assert f"{name}/2" in result.output
    registry = AdapterRegistry(registry_settings)
    first = _render(tiny_model_dir, registry, f"{name}/1", tmp_path / "one")
    second = _render(tiny_model_dir, registry, f"{name}/2", tmp_path / "two")
    assert np.abs(first - second).max() <= QUANT
    refused = CliRunner().invoke(
        app, ["adapters", "export", f"{name}/1", "--format", "lycoris", "-o", "x.safetensors"]
    )
    assert refused.exit_code != 0
    assert "--format 'lycoris'" in refused.output
