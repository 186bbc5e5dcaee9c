"""`benchmarks/gpu/run.sh --dry-run` prints its plan within the 9-minute budget and exits 0."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "benchmarks" / "gpu" / "run.sh"


def test_dry_run_prints_the_plan_and_exits_zero(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "TUNEFORGE_GPU_WORK": str(tmp_path)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = re.match(r"plan: (\d+) steps, limits add up to (\d+)s \(budget 540s\)", lines[0])
    assert header, lines[0]
    steps = [line.split()[0] for line in lines[1:-1]]
    assert steps == [
        "assets",
        "matrix",
        "train-bare-bf16",
        "train-ddp-fp16",
        "train-ddp-bf16",
        "train-fsdp-bf16",
        "train-deepspeed-bf16",
        "serve",
        "mixed",
    ]
    assert int(header.group(1)) == len(steps)
    limits = [int(line.split()[1].rstrip("s")) for line in lines[1:-1]]
    assert sum(limits) == int(header.group(2)) <= 540
    assert "tuneforge assets sd15-random" in result.stdout
    assert "TUNEFORGE_TEST_DEVICE=cuda" in result.stdout
    assert "test_precision_matrix.py" in result.stdout
    assert lines[-1] == "dry run: nothing executed"
    assert not any(tmp_path.iterdir()), "a dry run must not write anything"


def test_every_python_step_of_the_plan_exists_and_parses() -> None:
    import ast

    text = SCRIPT.read_text()
    scripts = set(re.findall(r"benchmarks/[\w/]+\.py", text))
    assert {"benchmarks/gpu/train_throughput.py", "benchmarks/gpu/serving_latency.py"} <= scripts
    for script in scripts:
        ast.parse((REPO_ROOT / script).read_text())


def test_unknown_arguments_are_refused() -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT), "--fast"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2 and "unknown argument" in result.stderr
