"""`tuneforge promote NAME VERSION --alias A [--force]`: move an alias to a registered version.

A version held back by its job's quality gate (`output.promoteIf`) is refused unless
`--force` is given: the documented override for a person who has looked at the images.
"""

from __future__ import annotations

import typer
from rich.console import Console

from tuneforge.settings import Settings

out = Console(highlight=False, soft_wrap=True)


def promote(
    model: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="Version to promote."),
    alias_argument: str | None = typer.Argument(
        None, metavar="[ALIAS]", help="Alias, as a third argument (same as --alias)."
    ),
    alias: str | None = typer.Option(
        None, "--alias", "-a", help="Alias to point at the version, e.g. production."
    ),
    force: bool = typer.Option(
        False, "--force", help="Promote even when the version failed its quality gate."
    ),
) -> None:
    """Point an alias of a registered adapter at a version (refused when its quality gate failed, unless --force)."""
    from tuneforge.client.client import Client

    if alias and alias_argument and alias != alias_argument:
        raise ValueError(f"two aliases given ({alias_argument!r} and --alias {alias!r}): give one")
    chosen = alias or alias_argument
    if not chosen:
        raise ValueError("no alias given: add --alias NAME (e.g. --alias production)")
    Client(Settings(), backend="local").promote(model, version, chosen, force=force)
    out.print(f"{model}@{chosen} → version {version}" + (" (forced)" if force else ""))


def register(app: typer.Typer) -> None:
    """Attach `promote` to the root CLI."""
    from tuneforge.cli.jobs import handle_errors

    app.command("promote")(handle_errors(promote))
