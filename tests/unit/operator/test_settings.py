"""Operator settings come from the environment, through `OperatorSettings` only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge_operator.settings import OperatorSettings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TUNEFORGE_OPERATOR_RUNTIME_NAMESPACE", "POD_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)


def test_runtime_namespace_is_the_pods_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "tf-system")
    assert OperatorSettings().runtime_namespace == "tf-system"
    monkeypatch.setenv("TUNEFORGE_OPERATOR_RUNTIME_NAMESPACE", "platform")
    assert OperatorSettings().runtime_namespace == "platform"


def test_runtime_namespace_defaults_without_a_pod_namespace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(
        "tuneforge_operator.settings._SA_NAMESPACE", tmp_path / "no-service-account"
    )
    assert OperatorSettings().runtime_namespace == "tuneforge-system"
