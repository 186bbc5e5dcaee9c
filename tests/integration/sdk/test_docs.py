"""The runnable examples of docs/sdk.md and docs/cli.md, executed on the embedded backend.

docs/sdk.md: every ```python runnable block, in order, in one namespace.
docs/cli.md: every `$ tuneforge …` line of ```console runnable blocks, in order, through
typer's runner (each must exit 0), after writing the ```yaml file=NAME blocks. Each
document trains one tiny job (local Ray), so run inside scripts/netns-run.

Each document runs in its own empty TUNEFORGE_HOME and working folder. The two trainings
overlap: the SDK document's first block submits its job to the background, then the CLI
document runs (its `tuneforge run` trains in the foreground), then the SDK document's other
blocks wait for its job and go on. Each trainer is single-threaded, so on two cores two at
once take little longer than one. What each document printed, raised or left behind is
asserted by its own test below.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuneforge.cli.main import app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCS = Path(__file__).resolve().parents[3] / "docs"
FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
UNSET = (
    "TUNEFORGE_MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_URI",
    "TUNEFORGE_RAY_ADDRESS",
    "RAY_ADDRESS",
)


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


@dataclass
class Ran:
    """One document's run: its home, what it raised (if anything), and the CLI's outputs."""

    home: Path
    work: Path
    error: BaseException | None = None  # raised again by the document's test
    outputs: dict[str, str] = field(default_factory=dict)
    code_blocks: int = 0
    commands: int = 0

    def enter(self, patch: pytest.MonkeyPatch) -> None:
        """Make this document's home and working folder the current ones."""
        patch.setenv("TUNEFORGE_HOME", str(self.home))
        patch.chdir(self.work)


def _fresh(root: Path) -> Ran:
    (root / "work").mkdir(parents=True)
    return Ran(home=root / "home", work=root / "work")


def _sdk_step(ran: Ran, namespace: dict[str, object], code: list[str], indexes: range) -> None:
    if ran.error is not None:
        return
    try:
        for index in indexes:
            block = code[index]
            exec(compile(block, f"docs/sdk.md[python runnable #{index}]", "exec"), namespace)
    except (Exception, SystemExit) as error:  # re-raised by test_sdk_doc_examples_run
        ran.error = error


def _cli(ran: Ran) -> None:
    document = DOCS / "cli.md"
    for name, text in files(document).items():
        Path(name).write_text(text)
    commands = [
        line[2:].strip()
        for block in blocks(document, "console runnable")
        for line in block.splitlines()
        if line.startswith("$ tuneforge ")
    ]
    ran.commands = len(commands)
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(app, shlex.split(command)[1:])
        if result.exit_code != 0:
            ran.error = AssertionError(f"`{command}` exited {result.exit_code}:\n{result.output}")
            return
        ran.outputs[command] = result.output


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Ran]]:
    """Both documents run, their trainings overlapping (see the module's docstring)."""
    sdk = _fresh(tmp_path_factory.mktemp("docs-sdk"))
    cli = _fresh(tmp_path_factory.mktemp("docs-cli"))
    code = blocks(DOCS / "sdk.md", "python runnable")
    sdk.code_blocks = len(code)
    namespace: dict[str, object] = {"__name__": "docs_sdk"}
    cwd = os.getcwd()
    with pytest.MonkeyPatch.context() as patch:
        for variable in UNSET:
            patch.delenv(variable, raising=False)
        patch.setenv("TUNEFORGE_BACKEND", "local")
        try:
            sdk.enter(patch)
            _sdk_step(sdk, namespace, code, range(min(1, len(code))))  # submits its job
            cli.enter(patch)
            _cli(cli)
            sdk.enter(patch)
            _sdk_step(sdk, namespace, code, range(1, len(code)))
        finally:
            os.chdir(cwd)
    yield {"sdk": sdk, "cli": cli}


def test_sdk_doc_examples_run(documents: dict[str, Ran]) -> None:
    ran = documents["sdk"]
    assert ran.code_blocks >= 4
    if ran.error is not None:
        raise ran.error
    assert (ran.home / "mlflow.db").is_file()
    assert not (ran.home / "jobs" / "docs-dog").exists()  # the last block deletes the job


def test_cli_doc_examples_run(documents: dict[str, Ran]) -> None:
    ran = documents["cli"]
    assert ran.commands >= 10
    if ran.error is not None:
        raise ran.error
    outputs = ran.outputs
    assert "succeeded → toy-lora version 1" in outputs["tuneforge run job.yaml"]
    assert outputs["tuneforge list -l team=docs -o name"] == "finetunejob/toy-lora\n"
    assert '"production": "1"' in outputs["tuneforge adapters -o json"]
