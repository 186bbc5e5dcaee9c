"""What `tuneforge demo` writes and prints after training: image strips, measures, the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneforge.settings import Settings

DEMO_SEEDS = (0, 1, 2, 3)
"""The seeds of the demo's images: one strip of four without the adapter, one with it."""
ENLARGE = 4
"""The `*-x4.png` copies: every pixel of the 64 px images as a 4x4 square, for viewing."""
CLOSER = 0.02
"""A layout-distance change below this is reported as "about the same" (measured: the LoRA
moves the demo's images by about 0.06, docs/assets.md)."""


def with_evaluation(job: Any, evaluators: tuple[Path, Path], prompt: str, image_steps: int) -> Any:
    """The job with `spec.evaluation` on the tiny local CLIP and DINO (no download)."""
    from tuneforge.api.evaluation import EvaluationSpec

    clip_dir, dino_dir = evaluators
    evaluation = EvaluationSpec(
        prompts=[prompt],
        images_per_prompt=2,
        steps=image_steps,
        seed=DEMO_SEEDS[0],
        clip_model=str(clip_dir),
        dino_model=str(dino_dir),
    )
    return job.model_copy(update={"spec": job.spec.model_copy(update={"evaluation": evaluation})})


def strip(pngs: list[bytes]) -> bytes:
    """The images side by side, as one PNG."""
    import io

    from PIL import Image

    images = [Image.open(io.BytesIO(png)).convert("RGB") for png in pngs]
    row = Image.new("RGB", (sum(i.width for i in images), max(i.height for i in images)))
    left = 0
    for image in images:
        row.paste(image, (left, 0))
        left += image.width
    buffer = io.BytesIO()
    row.save(buffer, format="PNG")
    return buffer.getvalue()


def write_strips(images: dict[str, list[bytes]], output: Path) -> dict[str, Path]:
    """`base.png`, `lora.png` (each a strip of the seeds' images) and `*-x4.png` enlargements."""
    from tuneforge.assets.image_measures import enlarge

    paths = {}
    for label, pngs in images.items():
        row = strip(pngs)
        paths[label] = output / f"{label}.png"
        paths[label].write_bytes(row)
        paths[f"{label}-x4"] = output / f"{label}-x{ENLARGE}.png"
        paths[f"{label}-x4"].write_bytes(enlarge(row, ENLARGE))
    return paths


def mean_layout_distance(pngs: list[bytes], subject: list[Path]) -> float:
    """Mean over the images of each one's layout distance to the nearest subject photo."""
    from tuneforge.assets.image_measures import layout_distance

    return sum(layout_distance(png, subject) for png in pngs) / len(pngs)


def layout_line(images: dict[str, list[bytes]], subject: list[Path]) -> str:
    """The printed measure: how far the images are from the subject photos, without and with."""
    base, lora = (mean_layout_distance(images[k], subject) for k in ("base", "lora"))
    gain = base - lora
    if gain >= CLOSER:
        verdict = "closer to the subject"
    elif gain <= -CLOSER:
        verdict = "further from the subject"
    else:
        verdict = "about the same"
    return (
        f"distance to the nearest of the {len(subject)} subject photos (8x8 colour layout, "
        f"0 = same; mean of {len(images['base'])} seeds): without adapter {base:.3f}, "
        f"with adapter {lora:.3f} ({verdict})"
    )


def write_report(job_name: str, settings: Settings, path: Path) -> Any:
    """`tuneforge compare <job>`'s page, written to `path`; the report object."""
    from tuneforge.client.client import Client
    from tuneforge.compare import compare_runs

    return compare_runs([job_name], settings, Client(settings).get, output=path)


def evaluation_line(report: Any) -> str:
    """The job's own evaluation, before (base) → after, on one line."""
    from tuneforge.api import EvalMetric

    run = report.runs[0]
    figures = []
    for metric, label in ((EvalMetric.DINO, "DINO"), (EvalMetric.CLIP_I, "CLIP-I")):
        before, after = run.before(metric), run.final(metric)
        if before is not None and after is not None:
            figures.append(f"{label} {before:.2f} -> {after:.2f}")
    return (
        "job evaluation, base -> adapter (tiny random evaluators: they run the real code, "
        "their figures mean little): " + (", ".join(figures) or "no figures logged")
    )
