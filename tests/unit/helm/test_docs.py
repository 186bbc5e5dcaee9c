"""docs/install.md and docs/operations.md stay true: their values files render, every
condition reason has a troubleshooting row, and every values key they name exists."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.helm.helmchart import CHART_DIR, REPO_ROOT, render, template

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


SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
KEY_DOCS = [*sorted((REPO_ROOT / "docs").glob("*.md")), CHART_DIR / "README.md"]
# `serving.app.mixedBatching.enabled`, `runtimes.<name>.queueName`, `operator.*`, `s3.endpoint=…`
DOTTED = re.compile(r"`([A-Za-z][\w-]*(?:\.(?:[\w-]+|\*|<[\w-]+>))+)(?:=[^`]*)?`")
FILE_SUFFIXES = {"py", "md", "yaml", "yml", "json", "txt", "tpl", "sh"}
APP = SCHEMA["properties"]["serving"]["properties"]["app"]


def _resolve(node: dict[str, Any], path: list[str]) -> bool:
    """Whether the schema accepts this key path (`*` and `<name>` match any key)."""
    for key in path:
        if key == "*" or key.startswith("<"):
            child = node.get("additionalProperties")
            if not isinstance(child, dict) and not node.get("properties"):
                return False
            node = child if isinstance(child, dict) else {}
            continue
        props = node.get("properties") or {}
        if key in props:
            node = props[key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return False
    return True


def _documented_paths() -> list[tuple[str, list[str], dict[str, Any]]]:
    """(where, key path, schema node it starts from) for every chart key the docs name in
    backticks: paths from a top-level value, and serving app args (`mixedBatching.enabled`)
    in the serving docs."""
    found = []
    for path in KEY_DOCS:
        for text in DOTTED.findall(path.read_text()):
            keys = text.split(".")
            if keys[-1] in FILE_SUFFIXES:
                continue
            if keys[0] in SCHEMA["properties"]:
                found.append((f"{path.name}: {text}", keys, SCHEMA))
            elif path.name.startswith("serving") and keys[0] in APP["properties"]:
                found.append((f"{path.name}: {text} (serving.app)", keys, APP))
    return found


def _merged(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        return {
            k: _merged(base.get(k), override[k]) if k in base else override[k] for k in override
        } | {k: v for k, v in base.items() if k not in override}
    return override


def _values_blocks() -> list[tuple[str, dict[str, Any]]]:
    """YAML blocks in the docs whose top-level keys are chart values (a values file)."""
    blocks = []
    for path in KEY_DOCS:
        for index, block in enumerate(re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S)):
            blocks.extend(
                (f"{path.name} yaml block {index}", doc)
                for doc in yaml.safe_load_all(block)
                if isinstance(doc, dict) and doc and set(doc) <= set(SCHEMA["properties"])
            )
    return blocks


def _serve_args_blocks() -> list[tuple[str, dict[str, Any]]]:
    """`args` of every documented application of `tuneforge_serving.app:build_app`."""
    found = []
    for path in KEY_DOCS:
        for block in re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S):
            for doc in yaml.safe_load_all(block):
                apps = doc.get("applications", []) if isinstance(doc, dict) else []
                found.extend(
                    (f"{path.name}: {app.get('name')}", app.get("args") or {})
                    for app in apps
                    if app.get("import_path") == "tuneforge_serving.app:build_app"
                )
    return found


def test_every_key_the_docs_name_is_accepted_by_the_schema() -> None:
    paths = _documented_paths()
    named = {where.split(": ", 1)[1] for where, _, _ in paths}
    assert {"serving.app.mixedBatching", "networkPolicy.enabled"} <= named, sorted(named)
    unknown = [where for where, keys, root in paths if not _resolve(root, keys)]
    assert not unknown, f"the docs name keys values.schema.json refuses: {unknown}"


def test_every_values_block_in_the_docs_validates_against_the_schema() -> None:
    import jsonschema

    blocks = _values_blocks()
    assert len(blocks) >= 5
    for where, values in blocks:
        errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(_merged(DEFAULTS, values)))
        assert not errors, f"{where}: {[e.message for e in errors]}"


def test_documented_serve_app_args_validate_against_the_chart_schema() -> None:
    import jsonschema

    blocks = _serve_args_blocks()
    assert any("mixedBatching" in args for _, args in blocks), "the mixed-batching example"
    for where, args in blocks:
        # `auth` is the one arg the chart sets itself, from `serving.auth` (a Secret).
        chart_args = {k: v for k, v in args.items() if k != "auth"}
        errors = list(jsonschema.Draft7Validator(APP).iter_errors(chart_args))
        assert not errors, f"{where}: {[e.message for e in errors]}"


def test_the_key_check_catches_a_misspelt_key() -> None:
    """Control: a misspelt documented key would fail the checks above."""
    assert _resolve(SCHEMA, ["serving", "app", "mixedBatching", "enabled"])
    assert not _resolve(SCHEMA, ["serving", "app", "mixedBatchng"])
    assert not _resolve(APP, ["limits", "maxAdapters"])
