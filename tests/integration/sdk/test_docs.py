"""The runnable examples of docs/sdk.md and docs/cli.md, executed on the embedded backend.

docs/sdk.md: every ```python runnable block, in order, in one namespace.
docs/cli.md: every `$ tuneforge …` line of ```console runnable blocks, in order, through
typer's runner (each must exit 0), after writing the ```yaml file=NAME blocks. Each
document trains one tiny job (local Ray), so run inside scripts/netns-run.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuneforge.cli.main import app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCS = Path(__file__).resolve().parents[3] / "docs"
FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(document: Path, info: str) -> list[str]:
    """Bodies of the fenced blocks whose info string is exactly `info`."""
    return [
        m.group("body")
        for m in FENCE.finditer(document.read_text())
        if m.group("info").strip() == info
    ]


def files(document: Path) -> dict[str, str]:
    """The ```LANG file=NAME blocks, by NAME."""
    found = {}
    for match in FENCE.finditer(document.read_text()):
        named = re.search(r"\bfile=(\S+)", match.group("info"))
        if named:
            found[named.group(1)] = match.group("body")
    return found


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TUNEFORGE_HOME, the embedded backend, and an empty working folder."""
    for variable in (
        "TUNEFORGE_MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_URI",
        "TUNEFORGE_RAY_ADDRESS",
        "RAY_ADDRESS",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TUNEFORGE_BACKEND", "local")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path / "home"


def test_sdk_doc_examples_run(fresh_home: Path) -> None:
    code = blocks(DOCS / "sdk.md", "python runnable")
    assert len(code) >= 4
    namespace: dict[str, object] = {"__name__": "docs_sdk"}
    for index, block in enumerate(code):
        exec(compile(block, f"docs/sdk.md[python runnable #{index}]", "exec"), namespace)
    assert (fresh_home / "mlflow.db").is_file()
    assert not (fresh_home / "jobs" / "docs-dog").exists()  # the last block deletes the job


def test_cli_doc_examples_run(fresh_home: Path) -> None:
    document = DOCS / "cli.md"
    for name, text in files(document).items():
        Path(name).write_text(text)
    commands = [
        line[2:].strip()
        for block in blocks(document, "console runnable")
        for line in block.splitlines()
        if line.startswith("$ tuneforge ")
    ]
    assert len(commands) >= 10
    runner = CliRunner()
    outputs = {}
    for command in commands:
        result = runner.invoke(app, shlex.split(command)[1:])
        assert result.exit_code == 0, f"`{command}` exited {result.exit_code}:\n{result.output}"
        outputs[command] = result.output
    assert "succeeded → toy-lora version 1" in outputs["tuneforge run job.yaml"]
    assert outputs["tuneforge list -l team=docs -o name"] == "finetunejob/toy-lora\n"
    assert '"production": "1"' in outputs["tuneforge adapters -o json"]
