"""docs/install.md and docs/operations.md stay true: their values files render, every
condition reason has a troubleshooting row, and every values key they name exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.unit.helm.helmchart import REPO_ROOT, render, template

INSTALL = (REPO_ROOT / "docs" / "install.md").read_text()
OPERATIONS = (REPO_ROOT / "docs" / "operations.md").read_text()
VALUES_BLOCKS = dict(
    re.findall(r"```yaml\n# values: (\S+)\n(.*?)```", INSTALL, re.S),
)


def test_install_guide_has_values_examples() -> None:
    assert {"production.yaml", "namespaced.yaml", "serving.yaml"} <= set(VALUES_BLOCKS)


@pytest.mark.parametrize("name", sorted(VALUES_BLOCKS))
def test_values_examples_in_the_install_guide_render(chart: Path, name: str) -> None:
    values = yaml.safe_load(VALUES_BLOCKS[name])
    docs = render(chart, values, release="tuneforge", namespace="tuneforge-system")
    assert any(d["kind"] == "Deployment" for d in docs)
    if name == "serving.yaml":
        assert any(d["kind"] == "RayService" for d in docs)


def test_install_guide_release_name_gives_the_default_runtimes_configmap(chart: Path) -> None:
    names = {d["metadata"]["name"] for d in render(chart, release="tuneforge")}
    assert "tuneforge-runtimes" in names and "tuneforge-operator" in names
    assert "deploy/tuneforge-operator" in INSTALL


def test_every_condition_reason_has_a_troubleshooting_row() -> None:
    from tuneforge.api.status import Reason

    rows = set(re.findall(r"^\| `([A-Za-z]+)`", OPERATIONS, re.M))
    rows |= {r for pair in re.findall(r"^\| `(\w+)` / `(\w+)`", OPERATIONS, re.M) for r in pair}
    missing = {reason.value for reason in Reason} - rows
    assert not missing, f"docs/operations.md has no troubleshooting row for {sorted(missing)}"


def test_metrics_named_in_operations_exist() -> None:
    from tuneforge_operator import metrics

    source = Path(metrics.__file__).read_text()
    for name in re.findall(r"`(tuneforge_operator_[a-z_]+)", OPERATIONS):
        assert f'"{name}"' in source, f"docs/operations.md names unknown metric {name}"


def test_documented_set_flags_are_valid(chart: Path) -> None:
    flags = set(re.findall(r"--set ([\w.-]+=[^\s`)]+)", INSTALL + OPERATIONS))
    assert flags
    for flag in flags:
        result = template(chart, extra_args=["--set", flag])
        assert result.returncode == 0, f"--set {flag}: {result.output}"
