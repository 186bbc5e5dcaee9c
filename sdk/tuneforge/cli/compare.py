"""`tuneforge compare JOB|NAME/VERSION … -o report.html`: jobs and versions side by side.

Writes one self-contained HTML page (images embedded as data: URIs): the metrics table with
the DreamBooth paper's rows as a reference, loss and metric curves, and each evaluation
prompt's images per job/version beside the base model's. Jobs are read from the chosen
backend (`--backend`, `--namespace`); figures and images from MLflow (docs/evaluation.md).
"""

from __future__ import annotations

from pathlib import Path

import typer

from tuneforge.cli.jobs import BackendOption, NamespaceOption, make_client, out


def compare(
    refs: list[str] = typer.Argument(
        ...,
        metavar="JOB|NAME/VERSION...",
        help="Jobs (FineTuneJob names) and registered versions (NAME/VERSION or NAME@ALIAS).",
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="HTML file to write (e.g. report.html)."
    ),
    image_size: int = typer.Option(
        256, "--image-size", min=16, help="Largest side of one generated image, in pixels."
    ),
    backend: str | None = BackendOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Write one HTML page comparing jobs/versions: metrics, curves, images side by side."""
    report = make_client(backend, namespace).compare(*refs, output=output, image_size=image_size)
    size_kib = len(report.html.encode("utf-8")) / 1024
    out.print(
        f"wrote {output} ({size_kib:.0f} KiB, {report.image_count} images, "
        f"{len(report.prompts)} prompts): {', '.join(run.label for run in report.runs)}"
    )


def register(app: typer.Typer) -> None:
    """Attach `compare` to the root CLI."""
    from tuneforge.cli.jobs import handle_errors

    app.command("compare")(handle_errors(compare))
