"""Embedded mode's empty MLflow database, migrated once per MLflow version and copied.

A new SQLite tracking store runs all of MLflow's schema migrations (about a hundred alembic
steps): 4-12 s on 2 cores, paid by every new `TUNEFORGE_HOME` (a first `tuneforge run`,
`tuneforge demo`). The migrated, empty database is the same for every home except for one
value, the default experiment's `artifact_location`, so it is built once into the assets
cache (`mlflow-sqlite-<mlflow version>.db`) and each new home gets a copy with that value set
to what MLflow itself would have written (`<artifact root>/0`, and the creation time now). A template that is not a
migrated MLflow database (cut short, another version's schema) is rebuilt, never used.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from tuneforge.settings import Settings

DEFAULT_EXPERIMENT_ID = 0


def _mlflow_version() -> str:
    from importlib.metadata import version

    return version("mlflow")


def _is_migrated(database: Path) -> bool:
    """A finished MLflow database: one alembic revision recorded and the default experiment.

    The revision itself is not compared: the template's name carries the MLflow version, and
    MLflow refuses a database of another schema with its own message when it opens one."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
            experiments = connection.execute(
                "SELECT COUNT(*) FROM experiments WHERE experiment_id = ?", (DEFAULT_EXPERIMENT_ID,)
            ).fetchone()
    except sqlite3.Error:
        return False
    return len(rows) == 1 and experiments == (1,)


def template_path(settings: Settings) -> Path:
    """Where the migrated empty database of the installed MLflow is cached."""
    return settings.assets_cache_dir() / f"mlflow-sqlite-{_mlflow_version()}.db"


def migrated_template(settings: Settings) -> Path:
    """The cached migrated empty database, built (MLflow's own migrations) if missing or bad."""
    template = template_path(settings)
    if template.is_file() and _is_migrated(template):
        return template
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    template.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=template.parent, prefix=".mlflow-template-") as work:
        building = Path(work) / "mlflow.db"
        store = SqlAlchemyStore(f"sqlite:///{building}", str(Path(work) / "artifacts"))  # type: ignore[no-untyped-call]
        store.engine.dispose()
        if not _is_migrated(building):
            raise RuntimeError(f"MLflow's migrations left no finished database at {building}")
        os.replace(building, template)  # atomic: a concurrent builder writes the same content
    return template


def default_experiment_location(artifact_root: Path) -> str:
    """The default experiment's `artifact_location`, as MLflow's SQLite store writes it."""
    from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local

    root_uri = resolve_uri_if_local(str(artifact_root))  # type: ignore[no-untyped-call]
    return str(append_to_uri_path(root_uri, "0"))  # type: ignore[no-untyped-call]


def create_from_template(settings: Settings, database: Path, artifact_root: Path) -> None:
    """Write `database` as a copy of the migrated template whose default experiment's artifacts
    live under `artifact_root`; atomic, so a reader never sees a half-written file."""
    template = migrated_template(settings)
    partial = database.with_name(f".{database.name}.{os.getpid()}.partial")
    shutil.copyfile(template, partial)
    try:
        with sqlite3.connect(partial) as connection:
            now_ms = int(time.time() * 1000)
            connection.execute(
                "UPDATE experiments SET artifact_location = ?, creation_time = ?,"
                " last_update_time = ? WHERE experiment_id = ?",
                (default_experiment_location(artifact_root), now_ms, now_ms, DEFAULT_EXPERIMENT_ID),
            )
        connection.close()
        os.replace(partial, database)
    finally:
        partial.unlink(missing_ok=True)
