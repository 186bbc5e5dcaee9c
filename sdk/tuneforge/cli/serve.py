"""`tuneforge serve` (embedded Ray Serve over the local registry) and `tuneforge generate`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
import yaml

from tuneforge.cli.jobs import err, handle_errors, out
from tuneforge.client.generate import AdapterSelection, generate_png
from tuneforge.settings import Settings


def serve(
    base_model: str | None = typer.Option(
        None,
        "--base-model",
        help="Base model folder (or s3:// / hf:// URI) the adapters were trained on "
        "[default: TUNEFORGE_SERVING_BASE_MODEL].",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML file of serving settings (build_app args); flags win."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
) -> None:
    """Serve registered adapters with Ray Serve here until Ctrl-C (POST /v1/generate)."""
    from tuneforge.embedded.serving import serving_config, start_serving

    settings = Settings()
    extra: dict[str, Any] = {}
    if config is not None:
        loaded = yaml.safe_load(config.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config}: expected a mapping of serving settings")
        extra.update(loaded)
    model = (
        base_model
        or extra.pop("base_model", None)
        or extra.pop("baseModel", None)
        or settings.serving_base_model
    )
    if not model:
        raise ValueError(
            "no base model: pass --base-model PATH (the model the adapters were trained on) "
            "or set base_model in --config"
        )
    err.print(f"starting Ray Serve with {model} (first start takes a minute)…")
    handle = start_serving(
        settings, serving_config(settings, str(model), **extra), host=host, port=port
    )
    out.print(f"serving at {handle.url}  (POST {handle.url}/v1/generate; Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        err.print("stopping…")
    finally:
        handle.stop()


def generate(
    prompt: str = typer.Argument(..., help="Text prompt."),
    adapter: list[str] = typer.Option(
        [],
        "--adapter",
        "-a",
        help="NAME, NAME@ALIAS or NAME/VERSION, optionally =WEIGHT; repeatable.",
    ),
    output: Path = typer.Option(Path("out.png"), "--output", "-o", help="PNG file to write."),
    url: str | None = typer.Option(
        None,
        "--url",
        help="Serving endpoint [default: TUNEFORGE_SERVING_URL, else http://127.0.0.1:8000].",
    ),
    steps: int = typer.Option(25, "--steps", help="Denoising steps."),
    guidance_scale: float = typer.Option(7.5, "--guidance-scale", help="Classifier-free guidance."),
    width: int = typer.Option(512, "--width", help="Image width (multiple of 8)."),
    height: int = typer.Option(512, "--height", help="Image height (multiple of 8)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed (random when omitted)."),
    negative_prompt: str | None = typer.Option(None, "--negative-prompt", help="Negative prompt."),
) -> None:
    """Generate one image through a running serving endpoint and write it as PNG."""
    settings = Settings()
    token = settings.serving_token.get_secret_value() if settings.serving_token else None
    png = generate_png(
        prompt,
        [AdapterSelection.parse(a) for a in adapter],
        url=url or settings.serving_url,
        steps=steps,
        guidance_scale=guidance_scale,
        width=width,
        height=height,
        seed=seed,
        negative_prompt=negative_prompt,
        token=token or None,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(png)
    out.print(f"wrote {output} ({len(png)} bytes)")


def register(app: typer.Typer) -> None:
    """Attach `serve` and `generate` to the root CLI."""
    app.command("serve")(handle_errors(serve))
    app.command("generate")(handle_errors(generate))
