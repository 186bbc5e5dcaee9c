"""`make demo`'s command, as a user runs it: it ends well and prints only its own lines.

The README promises `make demo` sets up and runs the main job on the embedded default; the
house rule is that it prints only lines a user can act on (no library INFO lines, no Ray
set-up or shutdown chatter, no warnings about packages the user never asked for).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TUNEFORGE = str(Path(sys.executable).parent / "tuneforge")
DEMO_LINES = (
    r"\[[1-4]/4\] ",
    r"      (model|dataset): +/",
    r"  demo-lora  .* 20/20 loss",
    r"finetunejob/demo-lora succeeded → demo-lora version 1 \(log: ",
    r"without adapter: ",
    r"with adapter: +",
    r"the two images differ; demo took \d+ s; state in ",
)
"""Every line the demo may print (its progress bar shows once, finished, without a TTY)."""


def test_demo_ends_with_two_different_images_and_prints_only_its_own_lines(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNEFORGE_", "MLFLOW_"))}
    env["COLUMNS"] = "120"
    output = tmp_path / "demo-output"
    done = subprocess.run(
        [TUNEFORGE, "demo", "--output", str(output), "--steps", "20", "--image-steps", "4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    printed = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 0, "\n".join(printed[-40:])
    base, lora = (output / "base.png").read_bytes(), (output / "lora.png").read_bytes()
    assert base != lora
    foreign = [
        line
        for line in printed
        if line.strip() and not any(re.match(pattern, line) for pattern in DEMO_LINES)
    ]
    assert foreign == [], "lines the user cannot act on:\n" + "\n".join(foreign)
