"""The runnable examples of docs/sdk.md and docs/cli.md, executed on the embedded backend.

The documents run once per session (the `documents` fixture in conftest.py: every runnable
block or command in order, the two documents' trainings overlapping); here each test
re-raises what its document raised and checks what it printed or left behind. Run inside
scripts/netns-run (Ray starts).
"""

from __future__ import annotations

import pytest

from tests.integration.sdk.conftest import Ran

pytestmark = [pytest.mark.integration, pytest.mark.slow]


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
