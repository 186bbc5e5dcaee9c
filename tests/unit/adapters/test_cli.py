"""`tuneforge adapters import/export`: refusals reach the user before anything is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuneforge.cli.main import app

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "home"
    monkeypatch.setenv("TUNEFORGE_HOME", str(state))
    monkeypatch.delenv("TUNEFORGE_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return state


def test_a_pickle_is_refused_before_mlflow_is_touched(home: Path, tmp_path: Path) -> None:
    pickle = tmp_path / "style.ckpt"
    pickle.write_bytes(b"never read")
    result = runner.invoke(app, ["adapters", "import", str(pickle), "--name", "style"])
    assert result.exit_code == 1
    assert ".ckpt files are pickles" in result.output
    assert "'style.safetensors'" in result.output
    assert not (home / "mlflow.db").exists()


def test_export_of_an_unknown_adapter_names_it(home: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["adapters", "export", "ghost@prod", "-o", str(tmp_path / "g.safetensors")]
    )
    assert result.exit_code == 1
    assert "ghost" in result.output
