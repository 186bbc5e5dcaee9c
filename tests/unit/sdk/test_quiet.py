"""The CLI keeps third-party routine chatter off the terminal, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TUNEFORGE = str(Path(sys.executable).parent / "tuneforge")


def test_a_fresh_mlflow_store_prints_no_set_up_lines(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNEFORGE_", "MLFLOW_"))}
    env["TUNEFORGE_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [TUNEFORGE, "adapters"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "No registered adapters."
    assert "mlflow" not in done.stderr.lower(), done.stderr  # "Creating initial ... tables"


NOISY = "[2026-12-01 16:35:43,222 W 1 1] network_util.cc:330: Failed to determine local IP via external connectivity to: 8.8.8.8:53\n"


def test_native_filter_drops_only_the_known_line() -> None:
    program = f"""
import os, sys
from tuneforge.quiet import native_noise_filtered
with native_noise_filtered():
    os.write(2, {NOISY!r}.encode())
    os.write(2, b"a real error from C++\\n")
    print("python stderr line", file=sys.stderr)
os.write(2, b"after the block\\n")
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "a real error from C++",
        "python stderr line",
        "after the block",
    ]
