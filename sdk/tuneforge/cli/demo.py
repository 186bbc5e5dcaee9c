"""`tuneforge demo`: the whole journey on this machine, on tiny local assets (what `make demo` runs).

1. build the demo's base (the tiny SD-1.5-shaped model with a pooling VAE, pretrained briefly
   on generic toy shapes: `cached_tiny_pretrained`) and the subject photos (the "sks toy"
   robot in close-up: `cached_demo_subject`); no downloads, cached after the first run;
2. train a LoRA on them with the same code as `tuneforge run` (trainer entry point, local
   Ray, MLflow in a SQLite store under `<output>/state`), with the job's evaluation on the
   tiny local evaluators;
3. serve the result with the serving app on an embedded Ray Serve;
4. generate the same prompt and seeds without and with the adapter, write both strips (and
   4x enlarged copies) and measure how far each image is from the subject photos;
5. write the compare report (`tuneforge compare`'s HTML page) of the job.
"""

from __future__ import annotations

import importlib.util
import secrets
import socket
import time
from pathlib import Path

import typer

from tuneforge.cli.demo_output import (
    DEMO_SEEDS,
    ENLARGE,
    evaluation_line,
    layout_line,
    with_evaluation,
    write_report,
    write_strips,
)
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
DEMO_BACKGROUND = "white"
"""The demo prompt's background (`a photo of sks toy, close-up, on a white background`)."""


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
    steps: int = typer.Option(100, "--steps", min=1, help="LoRA training steps."),
    learning_rate: float = typer.Option(1e-2, "--learning-rate", help="LoRA learning rate."),
    image_steps: int = typer.Option(10, "--image-steps", min=1, help="Denoising steps per image."),
) -> None:
    """Build tiny assets, train a LoRA, serve it, and show and measure images without and with it."""
    from tuneforge.assets.cache import (
        assets_cache_dir,
        cached_demo_subject,
        cached_tiny_pretrained,
    )
    from tuneforge.assets.demo_subject import demo_caption
    from tuneforge.assets.evaluators import cached_tiny_evaluators
    from tuneforge.assets.tiny_dataset import INSTANCE_PROMPT
    from tuneforge.assets.tiny_pretrained import TINY_PRETRAINED_VERSION
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

    cold = not any(assets_cache_dir().glob(f"tiny-pretrained-v{TINY_PRETRAINED_VERSION}-*"))
    err.print(
        "[1/5] building the tiny base model, pretrained on generic shapes, and the subject "
        + ("photos (first run: 1-2 min, then cached)…" if cold else "photos (cached)…")
    )
    model_dir = cached_tiny_pretrained()
    dataset_dir = cached_demo_subject()
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

    prompt = demo_caption(DEMO_BACKGROUND)
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
    job = with_evaluation(job, evaluators, prompt, image_steps)
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
        err.print(
            f"[4/5] generating {len(DEMO_SEEDS)} images without and {len(DEMO_SEEDS)} with the "
            f"adapter (same prompt and seeds: {prompt!r})…"
        )
        images: dict[str, list[bytes]] = {}
        for label, adapters in (
            ("base", []),
            ("lora", [AdapterSelection(AdapterRef(DEMO_MODEL, alias=DEMO_ALIAS))]),
        ):
            images[label] = [
                generate_png(
                    prompt,
                    adapters,
                    url=handle.url,
                    steps=image_steps,
                    width=64,
                    height=64,
                    seed=seed,
                    token=token,
                )
                for seed in DEMO_SEEDS
            ]
    finally:
        handle.stop()
    paths = write_strips(images, output)
    same = images["base"] == images["lora"]
    out.print(f"without adapter: {paths['base']}  (enlarged {ENLARGE}x: {paths['base-x4'].name})")
    out.print(
        f"with adapter:    {paths['lora']}  ({DEMO_MODEL}@{DEMO_ALIAS}; "
        f"enlarged {ENLARGE}x: {paths['lora-x4'].name})"
    )
    out.print(layout_line(images, sorted((dataset_dir / "instance").glob("*.png"))))
    err.print("[5/5] writing the compare report…")
    report = write_report(DEMO_JOB, settings, output / "compare.html")
    out.print(evaluation_line(report))
    out.print(f"compare report: {output / 'compare.html'}")
    out.print(
        f"the two strips {'are IDENTICAL (the adapter had no effect)' if same else 'differ'}; "
        f"demo took {time.monotonic() - started:.0f} s; state in {settings.home}"
    )
    if same:
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Attach `demo` to the root CLI."""
    app.command("demo")(handle_errors(demo))
