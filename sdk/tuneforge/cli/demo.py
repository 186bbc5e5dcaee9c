"""`tuneforge demo`: the whole journey on this machine, on tiny local assets (what `make demo` runs).

1. build the demo's base (the tiny SD-1.5-shaped model pretrained briefly on generic toy
   shapes, `cached_tiny_pretrained`) and the synthetic "sks toy" dataset (no downloads;
   cached after the first run);
2. train a LoRA on them with the same code as `tuneforge run` (trainer entry point, local
   Ray, MLflow in a SQLite store under `<output>/state`), with the job's evaluation on the
   tiny local evaluators;
3. serve the result with the serving app on an embedded Ray Serve;
4. generate the same seeded prompt without and with the adapter, write both PNGs (and 4x
   enlarged copies) and measure how close each one's colours are to the subject photos';
5. write the compare report (`tuneforge compare`'s HTML page) of the job.
"""

from __future__ import annotations

import importlib.util
import secrets
import socket
import time
from pathlib import Path
from typing import Any

import typer

from tuneforge.cli.jobs import (
    EXIT_FAILED,
    err,
    handle_errors,
    out,
    report_finished_run,
    run_job_with_progress,
)
from tuneforge.settings import Settings

DEMO_JOB = "demo-lora"
DEMO_MODEL = "demo-lora"
DEMO_ALIAS = "demo"
DEMO_SEED = 1234
ENLARGE = 4
"""The `*-x4.png` copies: every pixel of the 64 px image as a 4x4 square, for viewing."""


def _available(module: str) -> bool:
    """Whether a module can be found (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo(
    output: Path = typer.Option(
        Path("demo-output"), "--output", help="Folder for the PNGs and the demo's state."
    ),
    steps: int = typer.Option(60, "--steps", min=1, help="LoRA training steps."),
    learning_rate: float = typer.Option(5e-3, "--learning-rate", help="LoRA learning rate."),
    image_steps: int = typer.Option(10, "--image-steps", min=1, help="Denoising steps per image."),
) -> None:
    """Build tiny assets, train a LoRA, serve it, write and measure one image without and one with it."""
    from tuneforge.assets import INSTANCE_PROMPT
    from tuneforge.assets.cache import (
        assets_cache_dir,
        cached_tiny_dataset,
        cached_tiny_pretrained,
    )
    from tuneforge.assets.evaluators import cached_tiny_evaluators
    from tuneforge.client.builders import cpu_resources, lora_job

    started = time.monotonic()
    output = output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    settings = Settings().model_copy(
        update={
            "home": output / "state",
            "mlflow_tracking_uri": None,
            "ray_address": None,
            "s3_endpoint": None,
            "backend": "local",
        }
    )

    cold = not any(assets_cache_dir().glob("tiny-pretrained-*"))
    err.print(
        "[1/5] building the tiny base model, pretrained on generic shapes, and the dataset "
        + ("(first run: ~1-2 min, then cached)…" if cold else "(cached)…")
    )
    model_dir = cached_tiny_pretrained()
    dataset_dir = cached_tiny_dataset(resolution=64)
    evaluators = cached_tiny_evaluators()
    out.print(f"      model:   {model_dir}\n      dataset: {dataset_dir}")

    missing = [
        m for m in ("tuneforge_trainer.__main__", "tuneforge_serving.app") if not _available(m)
    ]
    if missing:
        err.print(
            "demo stopped after building the assets: "
            + ", ".join(missing)
            + " is not available yet in this installation (the trainer/serving packages), "
            "so there is nothing to train or serve with."
        )
        raise typer.Exit(EXIT_FAILED)

    err.print(f"[2/5] training a LoRA for {steps} steps (local Ray; the first start takes ~1 min)…")
    job = lora_job(
        DEMO_JOB,
        dataset=dataset_dir,
        instance_prompt=INSTANCE_PROMPT,
        base_model=model_dir,
        registered_model=DEMO_MODEL,
        alias=DEMO_ALIAS,
        steps=steps,
        rank=4,
        learning_rate=learning_rate,
        batch_size=2,
        resolution=64,
        resources=cpu_resources(workers=1, cpus_per_worker=1),
    )
    job = with_evaluation(job, evaluators, image_steps)
    from tuneforge.embedded.foreground import run_in_foreground

    finished = run_job_with_progress(
        job, settings, replace=True, verbose=False, run=run_in_foreground
    )
    report_finished_run(finished, settings)

    err.print("[3/5] serving the adapter with Ray Serve…")
    from tuneforge.client.generate import AdapterSelection, generate_png
    from tuneforge.contract import AdapterRef
    from tuneforge.embedded.serving import serving_config, start_serving

    token = secrets.token_urlsafe(32)  # this run's own: nobody else on the machine may call
    handle = start_serving(
        settings,
        serving_config(settings, str(model_dir), limits={"max_width": 64, "max_height": 64}),
        port=_free_port(),
        token=token,
    )
    try:
        err.print("[4/5] generating without and with the adapter (same prompt and seed)…")
        images = {}
        for label, adapters in (
            ("base", []),
            ("lora", [AdapterSelection(AdapterRef(DEMO_MODEL, alias=DEMO_ALIAS))]),
        ):
            images[label] = generate_png(
                INSTANCE_PROMPT,
                adapters,
                url=handle.url,
                steps=image_steps,
                width=64,
                height=64,
                seed=DEMO_SEED,
                token=token,
            )
    finally:
        handle.stop()
    paths = write_images(images, output)
    same = images["base"] == images["lora"]
    out.print(f"without adapter: {paths['base']}  (enlarged {ENLARGE}x: {paths['base-x4'].name})")
    out.print(
        f"with adapter:    {paths['lora']}  ({DEMO_MODEL}@{DEMO_ALIAS}; "
        f"enlarged {ENLARGE}x: {paths['lora-x4'].name})"
    )
    subject = sorted((dataset_dir / "instance").glob("*.png"))
    base_far, lora_far = (colour_distance(images[k], subject) for k in ("base", "lora"))
    out.print(
        f"colour distance to the {len(subject)} subject photos (0 = same colours, 1 = none "
        f"shared): without adapter {base_far:.2f}, with adapter {lora_far:.2f} "
        + verdict(base_far - lora_far)
    )
    err.print("[5/5] writing the compare report…")
    report = write_report(DEMO_JOB, settings, output / "compare.html")
    out.print(evaluation_line(report))
    out.print(f"compare report: {output / 'compare.html'}")
    out.print(
        f"the two images {'are IDENTICAL (the adapter had no effect)' if same else 'differ'}; "
        f"demo took {time.monotonic() - started:.0f} s; state in {settings.home}"
    )
    if same:
        raise typer.Exit(EXIT_FAILED)


def with_evaluation(job: Any, evaluators: tuple[Path, Path], image_steps: int) -> Any:
    """The job with `spec.evaluation` on the tiny local CLIP and DINO (no download)."""
    from tuneforge.api.evaluation import EvaluationSpec
    from tuneforge.assets import INSTANCE_PROMPT

    clip_dir, dino_dir = evaluators
    evaluation = EvaluationSpec(
        prompts=[INSTANCE_PROMPT, "a sks toy on a white background"],
        images_per_prompt=2,
        steps=image_steps,
        seed=DEMO_SEED,
        clip_model=str(clip_dir),
        dino_model=str(dino_dir),
    )
    return job.model_copy(update={"spec": job.spec.model_copy(update={"evaluation": evaluation})})


def write_images(images: dict[str, bytes], output: Path) -> dict[str, Path]:
    """`base.png`, `lora.png` and their nearest-neighbour enlargements `*-x4.png`."""
    from tuneforge.assets.image_measures import enlarge

    paths = {}
    for label, png in images.items():
        paths[label] = output / f"{label}.png"
        paths[label].write_bytes(png)
        paths[f"{label}-x4"] = output / f"{label}-x{ENLARGE}.png"
        paths[f"{label}-x4"].write_bytes(enlarge(png, ENLARGE))
    return paths


def colour_distance(png: bytes, subject: list[Path]) -> float:
    from tuneforge.assets.image_measures import colour_distance as distance

    return distance(png, subject)


def verdict(gain: float) -> str:
    """How the colour distance moved, in words (0.05 ~ 5 % of the pixels' colours)."""
    if gain >= 0.05:
        return "(closer to the subject)"
    if gain <= -0.05:
        return "(further from the subject)"
    return "(about the same: the adapter's effect on colours is small)"


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


def register(app: typer.Typer) -> None:
    """Attach `demo` to the root CLI."""
    app.command("demo")(handle_errors(demo))
