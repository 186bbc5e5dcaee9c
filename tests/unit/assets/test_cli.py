"""`tuneforge assets tiny-model|tiny-dataset` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tuneforge.cli.main import app

runner = CliRunner()


def test_tiny_model_command_writes_a_loadable_folder(tmp_path: Path) -> None:
    target = tmp_path / "model"
    result = runner.invoke(app, ["assets", "tiny-model", str(target), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert f"Wrote tiny SD-1.5-shaped model to {target} (seed 3," in result.output
    assert "M parameters" in result.output
    marker = json.loads((target / "tuneforge-tiny.json").read_text())
    assert marker["seed"] == 3
    assert (target / "unet" / "diffusion_pytorch_model.safetensors").is_file()


def test_tiny_dataset_command_and_force(tmp_path: Path) -> None:
    target = tmp_path / "data"
    args = ["assets", "tiny-dataset", str(target), "--resolution", "32"]
    result = runner.invoke(app, [*args, "--num-instance", "2", "--num-class", "1"])
    assert result.exit_code == 0, result.output
    assert "2 instance images" in result.output and "1 class images" in result.output
    assert len(list((target / "instance").glob("*.png"))) == 2

    refused = runner.invoke(app, args)
    assert refused.exit_code == 1
    assert "not empty" in refused.output and "--force" in refused.output
    assert len(list((target / "instance").glob("*.png"))) == 2

    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert len(list((target / "instance").glob("*.png"))) == 6


def test_tiny_dataset_command_rejects_bad_resolution(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["assets", "tiny-dataset", str(tmp_path / "d"), "--resolution", "50"]
    )
    assert result.exit_code == 2
    assert "resolution must be a multiple of 8" in result.output
    assert not (tmp_path / "d").exists()


def test_tiny_model_command_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = runner.invoke(app, ["assets", "tiny-model", str(target)])
    assert result.exit_code == 1
    assert "not a folder" in result.output
