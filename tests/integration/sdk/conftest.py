"""The runnable examples of docs/sdk.md and docs/cli.md, run once per session (`documents`).

docs/sdk.md: every ```python runnable block, in order, in one namespace.
docs/cli.md: every `$ tuneforge …` line of ```console runnable blocks, in order, after
writing the ```yaml file=NAME blocks: `tuneforge run` as a real process (the CLI's own
process, its progress bar included), every other command through typer's runner. Each
document trains one tiny job on the embedded backend (local Ray), so run inside
scripts/netns-run.

Each document runs in its own empty TUNEFORGE_HOME and working folder. The two trainings
overlap: the SDK document's first block submits its job to the background, then the CLI
document runs (its `tuneforge run` trains in the foreground), then the SDK document's other
blocks wait for its job and go on. Each trainer is single-threaded, so on two cores two at
once take little longer than one. test_docs.py asserts what each document printed, raised
or left behind; test_embedded_backend.py checks the CLI document's `tuneforge run` process
and then goes on in its state directory (a second version of its model, and more).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[3] / "docs"
FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
TUNEFORGE = str(Path(sys.executable).parent / "tuneforge")
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
    processes: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
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


def _run_process(ran: Ran, command: str) -> tuple[int, str]:
    """`tuneforge run …` as a real process in the document's folder; (exit code, stdout)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TUNEFORGE_", "MLFLOW_TRACKING"))
    }
    env.update({"TUNEFORGE_HOME": str(ran.home), "TUNEFORGE_BACKEND": "local", "COLUMNS": "120"})
    done = subprocess.run(
        [TUNEFORGE, *shlex.split(command)[1:]],
        env=env,
        cwd=ran.work,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    ran.processes[command] = done
    return done.returncode, (done.stdout + done.stderr) if done.returncode else done.stdout


def _cli(ran: Ran) -> None:
    from typer.testing import CliRunner

    from tuneforge.cli.main import app

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
        if command.startswith("tuneforge run "):
            code, output = _run_process(ran, command)
        else:
            result = runner.invoke(app, shlex.split(command)[1:])
            code, output = result.exit_code, result.output
        if code != 0:
            ran.error = AssertionError(f"`{command}` exited {code}:\n{output}")
            return
        ran.outputs[command] = output


@pytest.fixture(scope="session")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Ran]]:
    """Both documents run, their trainings overlapping (see this file's docstring)."""
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
