"""`tuneforge assets`: build the tiny model and dataset that tests and the demo use."""

from __future__ import annotations

from pathlib import Path

import typer

assets_app = typer.Typer(
    name="assets",
    help="Build the tiny model, SD 1.5 with random weights, and a synthetic dataset (no downloads).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Attach the `assets` command group to the root CLI."""
    app.add_typer(assets_app, name="assets")


def _folder_size(path: Path) -> int:
    """Total bytes of the files under `path`."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@assets_app.command("tiny-model")
def tiny_model(
    path: Path = typer.Argument(..., help="Folder to write (must be new or empty)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Weight seed; same seed, same bytes."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty folder."),
) -> None:
    """Write a tiny SD-1.5-shaped diffusers pipeline with random weights to PATH."""
    from tuneforge.assets.tiny_model import build_tiny_model, tiny_model_info

    try:
        target = build_tiny_model(path, seed=seed, overwrite=force)
    except FileExistsError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    info = tiny_model_info(target) or {}
    parameters = sum(info.get("parameters", {}).values())
    typer.echo(
        f"Wrote tiny SD-1.5-shaped model to {target} (seed {seed}, "
        f"{parameters / 1e6:.2f} M parameters, {_folder_size(target) / 2**20:.1f} MiB, "
        f"{info.get('resolution')}x{info.get('resolution')} images); "
        f"load it with StableDiffusionPipeline.from_pretrained('{target}')."
    )


@assets_app.command("sd15-random")
def sd15_random(
    path: Path = typer.Argument(..., help="Folder to write (must be new or empty)."),
    single_file: Path | None = typer.Option(
        None, "--single-file", help="Also write one original-layout .safetensors checkpoint."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Weight seed; same seed, same weights."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty folder or the file."),
) -> None:
    """Write SD 1.5's real architecture with random weights (about 4 GB) to PATH."""
    from tuneforge.assets.sd15_random import build_sd15_random

    try:
        target = build_sd15_random(path, seed=seed, single_file=single_file, overwrite=force)
    except (FileExistsError, ValueError) as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    also = (
        f" and {single_file} ({single_file.stat().st_size / 2**30:.2f} GiB)" if single_file else ""
    )
    typer.echo(
        f"Wrote SD 1.5 with random weights (seed {seed}) to {target} "
        f"({_folder_size(target) / 2**30:.2f} GiB){also}; nothing was downloaded."
    )


@assets_app.command("tiny-dataset")
def tiny_dataset(
    path: Path = typer.Argument(..., help="Folder to write (must be new or empty)."),
    resolution: int = typer.Option(64, "--resolution", help="Image size, a multiple of 8."),
    num_instance: int = typer.Option(6, "--num-instance", min=1, help="Subject images."),
    num_class: int = typer.Option(6, "--num-class", min=0, help="Class images."),
    seed: int = typer.Option(0, "--seed", min=0, help="Drawing seed; same seed, same bytes."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty folder."),
) -> None:
    """Write a synthetic subject set ("sks toy") with captions, and class images, to PATH."""
    from tuneforge.assets.tiny_dataset import build_tiny_dataset, tiny_dataset_info

    try:
        target = build_tiny_dataset(
            path,
            resolution=resolution,
            num_instance=num_instance,
            num_class=num_class,
            seed=seed,
            overwrite=force,
        )
    except FileExistsError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    info = tiny_dataset_info(target) or {}
    typer.echo(
        f"Wrote tiny dataset to {target}: {num_instance} instance images in "
        f"{target / info.get('instance_dir', 'instance')} (prompt "
        f"'{info.get('instance_prompt')}'), {num_class} class images in "
        f"{target / info.get('class_dir', 'class')} (prompt '{info.get('class_prompt')}'), "
        f"{resolution}x{resolution} PNG with .txt captions, seed {seed}."
    )
