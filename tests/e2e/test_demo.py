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

from tuneforge.assets.cache import cached_tiny_dataset
from tuneforge.assets.image_measures import colour_distance, smoothness

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TUNEFORGE = str(Path(sys.executable).parent / "tuneforge")
DEMO_LINES = (
    r"\[[1-5]/5\] ",
    r"      (model|dataset): +/",
    r"  demo-lora  .* 20/20 loss",
    r"finetunejob/demo-lora succeeded → demo-lora version 1 \(log: ",
    r"without adapter: /.*/base\.png  \(enlarged 4x: base-x4\.png\)$",
    r"with adapter: +/.*/lora\.png  \(demo-lora@demo; enlarged 4x: lora-x4\.png\)$",
    r"colour distance to the 6 subject photos \(0 = same colours, 1 = none shared\): "
    r"without adapter \d\.\d\d, with adapter \d\.\d\d \((closer|further|about the same)",
    r"job evaluation, base -> adapter \(tiny random evaluators: .*\): DINO -?\d\.\d\d -> ",
    r"compare report: /.*/compare\.html$",
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
    for name in ("base-x4.png", "lora-x4.png"):
        assert (output / name).stat().st_size > 0
    _check_report(output / "compare.html")
    _check_measures(base, lora)
    foreign = [
        line
        for line in printed
        if line.strip() and not any(re.match(pattern, line) for pattern in DEMO_LINES)
    ]
    assert foreign == [], "lines the user cannot act on:\n" + "\n".join(foreign)


BASE_SMOOTHNESS_MIN = 0.95
"""The pretrained base's demo image is shapes, not noise: its neighbouring pixels correlate.

Measured (docs/assets.md; prompt `a photo of sks toy`, seeds 1234 and 0-3, 4 and 10 steps): the
random tiny model's images 0.78-0.84 (its VAE decodes correlated noise), the pretrained base's
0.984-0.990 (8x8 colour layouts, smoothly upsampled)."""


def _check_report(path: Path) -> None:
    """The compare page exists and is self-contained: every image inline, nothing fetched."""
    page = path.read_text(encoding="utf-8")
    images = re.findall(r"<img [^>]*src=\"([^\"]*)\"", page)
    assert images and all(src.startswith("data:image/") for src in images), images[:3]
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


def _check_measures(base: bytes, lora: bytes) -> None:
    """The base draws colour layouts, not noise; the printed distances are the files' own.

    Not asserted yet: that the adapter moves the image toward the subject. Measured with the
    150-step base, a rank-4 attention LoRA (20 or 60 steps, lr 5e-3 to 2e-2) leaves the
    demo image's colour distance at 0.84 (+-0.001): the base's image for this prompt barely
    depends on seed or guidance, and the LoRA does not move it (issue 18 item 6, open).
    """
    subject = sorted((cached_tiny_dataset(resolution=64) / "instance").glob("*.png"))
    assert 0 <= colour_distance(lora, subject) <= 1
    assert smoothness(base) > BASE_SMOOTHNESS_MIN
