"""`tuneforge demo`: the whole journey on this machine, on tiny local assets (what `make demo` runs).

1. build the tiny SD-1.5-shaped model and the synthetic "sks toy" dataset (no downloads);
2. train a LoRA on them with the same code as `tuneforge run` (trainer entry point, local
   Ray, MLflow in a SQLite store under `<output>/state`);
3. serve the result with the serving app on an embedded Ray Serve;
4. generate the same seeded prompt without and with the adapter and write both PNGs.
"""

from __future__ import annotations

import importlib.util
import secrets
import socket
import time
from pathlib import Path

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
    image_steps: int = typer.Option(10, "--image-steps", min=1, help="Denoising steps per image."),
) -> None:
    """Build tiny assets, train a LoRA, serve it, and write one image without and one with it."""
    from tuneforge.assets import INSTANCE_PROMPT
    from tuneforge.assets.cache import cached_tiny_dataset, cached_tiny_model
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

    err.print("[1/4] building the tiny model and dataset (cached after the first run)…")
    model_dir = cached_tiny_model()
    dataset_dir = cached_tiny_dataset(resolution=64)
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

    err.print(f"[2/4] training a LoRA for {steps} steps (local Ray; the first start takes ~1 min)…")
    job = lora_job(
        DEMO_JOB,
        dataset=dataset_dir,
        instance_prompt=INSTANCE_PROMPT,
        base_model=model_dir,
        registered_model=DEMO_MODEL,
        alias=DEMO_ALIAS,
        steps=steps,
        rank=4,
        learning_rate=1e-3,
        batch_size=2,
        resolution=64,
        resources=cpu_resources(workers=1, cpus_per_worker=1),
    )
    from tuneforge.embedded.foreground import run_in_foreground

    finished = run_job_with_progress(
        job, settings, replace=True, verbose=False, run=run_in_foreground
    )
    report_finished_run(finished, settings)

    err.print("[3/4] serving the adapter with Ray Serve…")
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
        err.print("[4/4] generating without and with the adapter (same prompt and seed)…")
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
    paths = {label: output / f"{label}.png" for label in images}
    for label, png in images.items():
        paths[label].write_bytes(png)
    same = images["base"] == images["lora"]
    out.print(f"without adapter: {paths['base']}")
    out.print(f"with adapter:    {paths['lora']}  ({DEMO_MODEL}@{DEMO_ALIAS})")
    out.print(
        f"the two images {'are IDENTICAL (the adapter had no effect)' if same else 'differ'}; "
        f"demo took {time.monotonic() - started:.0f} s; state in {settings.home}"
    )
    if same:
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Attach `demo` to the root CLI."""
    app.command("demo")(handle_errors(demo))
