"""The `tuneforge` command line. Each command group lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="tuneforge",
    help="Fine-tune Stable Diffusion 1.5 and serve the results.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """TuneForge: fine-tune Stable Diffusion 1.5 and serve the results."""
    from tuneforge.quiet import quiet_third_party

    quiet_third_party()


@app.command("crd")
def crd() -> None:
    """Print the FineTuneJob CustomResourceDefinition generated from the API models."""
    from tuneforge.api.crd import crd_yaml

    typer.echo(crd_yaml(), nl=False)


def _register_optional_groups() -> None:
    """Attach command groups that other modules define (kept import-light)."""
    import importlib

    for module_name in (
        "tuneforge.cli.assets",
        "tuneforge.cli.jobs",
        "tuneforge.cli.adapters",
        "tuneforge.cli.serve",
        "tuneforge.cli.demo",
        "tuneforge.cli.promote",
        "tuneforge.cli.compare",
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(app)


_register_optional_groups()
