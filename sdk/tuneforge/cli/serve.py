"""`tuneforge serve` (embedded Ray Serve over the local registry) and `tuneforge generate`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic.alias_generators import to_snake

from tuneforge import sigterm
from tuneforge.cli.jobs import err, handle_errors, out
from tuneforge.client.generate import AdapterSelection, generate_png
from tuneforge.settings import Settings

SERVING_CONFIG = "tuneforge_serving.config:ServingConfig"
"""The serving app's config model, loaded by import path (the SDK never imports serving)."""


def serve(
    base_model: str | None = typer.Option(
        None,
        "--base-model",
        help="Base model folder (or s3:// / hf:// URI) the adapters were trained on "
        "[default: TUNEFORGE_SERVING_BASE_MODEL].",
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="YAML file of serving settings (build_app args, camelCase or snake_case); flags win.",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
) -> None:
    """Serve registered adapters with Ray Serve here until Ctrl-C or SIGTERM (POST /v1/generate)."""
    from tuneforge.embedded.serving import start_serving

    settings = Settings()
    args = serving_args(settings, base_model, config)
    token = settings.serving_token.get_secret_value() if settings.serving_token else None
    if not token:
        require_auth_choice(args, config)
    err.print(f"starting Ray Serve with {args['base_model']} (first start takes a minute)…")
    # start_serving handles SIGTERM like Ctrl-C from Ray's start on (tuneforge.sigterm).
    handle = start_serving(settings, args, host=host, port=port, token=token or None)
    out.print(f"serving at {handle.url}  (POST {handle.url}/v1/generate; Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        err.print("stopping (SIGTERM)…" if sigterm.received() else "stopping…")
    finally:
        handle.stop()


def serving_args(settings: Settings, base_model: str | None, config: Path | None) -> dict[str, Any]:
    """`build_app` args from --config, --base-model and settings, validated before Ray starts.

    The config's top-level keys may be camelCase (as docs/serving.md writes them) or
    snake_case; ValueError naming the file and each wrong setting otherwise.
    """
    from tuneforge.embedded.serving import serving_config

    loaded: dict[str, Any] = {}
    if config is not None:
        loaded = yaml.safe_load(config.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config}: expected a mapping of serving settings")
    extra = _snake_case_keys(loaded, config)
    model = base_model or extra.pop("base_model", None) or settings.serving_base_model
    if not model:
        raise ValueError(
            "no base model: pass --base-model PATH (the model the adapters were trained on) "
            "or set baseModel in --config"
        )
    extra.pop("base_model", None)
    args = serving_config(settings, str(model), **extra)
    _validate(args, config, {to_snake(str(key)): str(key) for key in loaded})
    return args


def require_auth_choice(args: dict[str, Any], config: Path | None) -> None:
    """ValueError before Ray starts when auth is on (the default) and no token is configured.

    The token comes from `TUNEFORGE_SERVING_TOKEN` or the config's `auth.tokenFile`; serving
    without one needs `auth: {enabled: false}` in --config, said explicitly.
    """
    from tuneforge.embedded.serving import load_by_import_path

    validated = load_by_import_path(SERVING_CONFIG).model_validate(args)
    try:
        validated.auth.load_token()
    except (ValueError, OSError) as error:
        source = str(config) if config is not None else "serving settings"
        raise ValueError(f"{source}: {error}") from None


def _snake_case_keys(loaded: dict[str, Any], config: Path | None) -> dict[str, Any]:
    """Top-level keys in snake_case; ValueError when one setting is given in both forms."""
    result: dict[str, Any] = {}
    for key, value in loaded.items():
        name = to_snake(str(key))
        if name in result:
            raise ValueError(f"{config}: {key!r} is given twice (as camelCase and snake_case)")
        result[name] = value
    return result


def _validate(args: dict[str, Any], config: Path | None, given: dict[str, str]) -> None:
    """ValueError listing each invalid setting (as the file names it) and pydantic's reason."""
    from pydantic import ValidationError

    from tuneforge.embedded.serving import load_by_import_path

    serving_config_model = load_by_import_path(SERVING_CONFIG)
    try:
        serving_config_model.model_validate(args)
    except ValidationError as error:
        lines = [f"  {_field(p['loc'], given)}: {p['msg']}" for p in error.errors()]
        source = str(config) if config is not None else "serving settings"
        raise ValueError(f"{source}: invalid serving config:\n" + "\n".join(lines)) from None


def _field(loc: tuple[Any, ...], given: dict[str, str]) -> str:
    """A pydantic error location as the config file wrote it (`cacheDir`, `limits.maxWidth`)."""
    if not loc:
        return "(the config as a whole)"
    return ".".join([given.get(str(loc[0]), str(loc[0])), *(str(part) for part in loc[1:])])


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
