"""Settings read every TuneForge variable; `generate`'s adapter selections use `AdapterRef`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.client.generate import AdapterSelection
from tuneforge.contract import AdapterRef
from tuneforge.settings import DEFAULT_SERVING_URL, Settings


def test_serving_and_cache_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("TUNEFORGE_SERVING_URL", "TUNEFORGE_SERVING_TOKEN", "TUNEFORGE_ASSETS_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    plain = Settings()
    assert plain.serving_url == DEFAULT_SERVING_URL and plain.serving_token is None
    assert plain.assets_cache_dir() == tmp_path / "xdg" / "tuneforge" / "assets"
    monkeypatch.setenv("TUNEFORGE_SERVING_TOKEN", "s3cret")
    monkeypatch.setenv("TUNEFORGE_ASSETS_CACHE", str(tmp_path / "assets"))
    monkeypatch.setenv("TUNEFORGE_MLFLOW_EXPERIMENT", "team-a")
    configured = Settings()
    assert configured.serving_token is not None
    assert configured.serving_token.get_secret_value() == "s3cret"
    assert configured.assets_cache_dir() == tmp_path / "assets"
    assert configured.mlflow_experiment == "team-a"


def test_local_artifact_root_only_without_a_tracking_server(tmp_path: Path) -> None:
    local = Settings(home=tmp_path, mlflow_tracking_uri=None)
    assert local.local_artifact_root() == tmp_path / "artifacts"
    assert local.resolved_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    server = Settings(home=tmp_path, mlflow_tracking_uri="http://mlflow:5000")
    assert server.local_artifact_root() is None
    assert server.resolved_tracking_uri() == "http://mlflow:5000"


@pytest.mark.parametrize(
    ("text", "ref", "weight"),
    [
        ("dog", AdapterRef("dog"), 1.0),
        ("dog@prod=0.8", AdapterRef("dog", alias="prod"), 0.8),
        ("dog-lora/3=-1", AdapterRef("dog-lora", 3), -1.0),
    ],
)
def test_adapter_selection_parses_a_reference_and_a_weight(
    text: str, ref: AdapterRef, weight: float
) -> None:
    selection = AdapterSelection.parse(text)
    assert (selection.ref, selection.weight) == (ref, weight)
    wire = selection.to_wire()
    assert AdapterRef.of(wire["name"], wire.get("version"), wire.get("alias")) == ref


@pytest.mark.parametrize("text", ["dog@@x", "dog/0", "a b", "dog=abc", "dog@1x", ""])
def test_adapter_selection_refuses_malformed_text(text: str) -> None:
    with pytest.raises(ValueError, match="NAME@ALIAS"):
        AdapterSelection.parse(text)
