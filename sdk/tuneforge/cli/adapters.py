"""`tuneforge adapters`: list registered adapters; import and export community layouts.

tuneforge adapters                                   # list (as before)
tuneforge adapters import my_lora.safetensors --name my-style --base-model ./sd15
tuneforge adapters export my-style@prod --format kohya -o my_style.safetensors
"""

from __future__ import annotations

from pathlib import Path

import typer

from tuneforge.cli.jobs import OutputOption, handle_errors, out
from tuneforge.cli.output import OutputFormat, print_adapters
from tuneforge.client.client import Client
from tuneforge.settings import Settings

adapters_app = typer.Typer(
    name="adapters",
    help="Registered adapters: list them, import community files, export to kohya/A1111.",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    """Attach the `adapters` command group to the root CLI."""
    app.add_typer(adapters_app, name="adapters")


def _client() -> Client:
    return Client(Settings(), backend="local")


@adapters_app.callback()
@handle_errors
def adapters(ctx: typer.Context, output: OutputFormat = OutputOption) -> None:
    """List registered adapters (models, versions, aliases) in MLflow."""
    if ctx.invoked_subcommand is None:
        print_adapters(out, _client().adapters(), output)


@adapters_app.command("import")
@handle_errors
def import_file(
    path: Path = typer.Argument(..., help="Adapter file (.safetensors)."),
    name: str = typer.Option(..., "--name", help="Registered model name to add a version to."),
    base_model: str | None = typer.Option(
        None,
        "--base-model",
        help="Base model the adapter is for (folder, .safetensors, s3://, hf://); default "
        "TUNEFORGE_SERVING_BASE_MODEL, else SD 1.5.",
    ),
    alias: str | None = typer.Option(None, "--alias", help="Alias to point at the new version."),
    token: str | None = typer.Option(
        None, "--token", help="Embedding token (A1111 embeddings default to the file's stem)."
    ),
    max_rank: int | None = typer.Option(
        None,
        "--max-rank",
        min=1,
        help="The largest rank of the server's hotswap.rankBuckets (default: serving's "
        "default buckets, largest 64).",
    ),
) -> None:
    """Convert a diffusers/peft or kohya/A1111 LoRA, or a diffusers/A1111 embedding, and register it."""
    from tuneforge.adapters import detect_layout  # numpy: imported when used, not by `--help`

    detect_layout(path)  # pickles and unknown layouts are refused before MLflow is touched
    version = _client().import_adapter(
        path, name, base_model=base_model, alias=alias, token=token, max_rank=max_rank
    )
    at = f" (alias {alias})" if alias else ""
    out.print(f"imported {path.name} as {version.name}/{version.version}{at}")


@adapters_app.command("export")
@handle_errors
def export(
    ref: str = typer.Argument(..., help="NAME, NAME@ALIAS or NAME/VERSION."),
    export_format: str = typer.Option(
        "kohya", "--format", help="kohya (kohya-ss, A1111, ComfyUI) or diffusers."
    ),
    output_file: Path = typer.Option(..., "-o", "--output", help="File to write (.safetensors)."),
) -> None:
    """Write a registered adapter as one file in a community layout."""
    written = _client().export_adapter(ref, output_file, export_format)
    out.print(f"wrote {written}")
