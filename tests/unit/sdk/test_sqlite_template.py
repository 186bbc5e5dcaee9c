"""Embedded mode's MLflow database comes from a migrated template: same as MLflow's own."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tuneforge.registry.mlflow_store import MlflowStore, prepare_local_store
from tuneforge.registry.sqlite_template import migrated_template, template_path
from tuneforge.settings import Settings


@pytest.fixture(scope="module")
def shared_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One assets cache for the module: the template is built once, then copied per home."""
    return tmp_path_factory.mktemp("assets")


@pytest.fixture
def settings(tmp_path: Path, shared_assets: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        backend="local",
        mlflow_tracking_uri=None,
        assets_cache=str(shared_assets),
    )


def _schema(database: Path) -> dict[str, list[str]]:
    """Each table's and index's definition as sorted lines: MLflow's own migrations write a
    table's constraints in varying order from one new database to the next."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT name, sql FROM sqlite_master").fetchall()
    return {
        str(name): sorted(line.strip().rstrip(",") for line in str(sql).splitlines())
        for name, sql in rows
    }


def test_a_new_home_equals_what_mlflow_creates_with_the_same_artifact_root(
    settings: Settings, tmp_path: Path
) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    prepare_local_store(settings)
    ours = Path(settings.home) / "mlflow.db"
    root = settings.local_artifact_root()
    assert root is not None
    theirs = tmp_path / "theirs.db"
    SqlAlchemyStore(f"sqlite:///{theirs}", str(root)).engine.dispose()

    assert _schema(ours) == _schema(theirs)
    query = "SELECT experiment_id, name, artifact_location, lifecycle_stage FROM experiments"
    with sqlite3.connect(ours) as a, sqlite3.connect(theirs) as b:
        assert a.execute(query).fetchall() == b.execute(query).fetchall()
        versions = "SELECT version_num FROM alembic_version"
        assert a.execute(versions).fetchall() == b.execute(versions).fetchall()
    assert template_path(settings).is_file()


def test_the_store_works_on_a_copied_database(settings: Settings) -> None:
    store = MlflowStore(settings)
    with store.client() as client:
        default = client.get_experiment("0")
        run = client.create_run("0")
        client.log_metric(run.info.run_id, "loss", 0.5)
        assert client.get_metric_history(run.info.run_id, "loss")[0].value == 0.5
    root = settings.local_artifact_root()
    assert default.artifact_location == f"{root}/0"
    assert run.info.artifact_uri.startswith(f"{root}/0/")


def test_a_broken_template_is_rebuilt_not_used(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home", backend="local", mlflow_tracking_uri=None,
        assets_cache=str(tmp_path / "assets"),
    )  # fmt: skip
    template = template_path(settings)
    template.parent.mkdir(parents=True)
    template.write_bytes(b"not a database")
    rebuilt = migrated_template(settings)
    assert rebuilt == template
    with sqlite3.connect(template) as connection:
        assert connection.execute("SELECT COUNT(*) FROM alembic_version").fetchone() == (1,)
    prepare_local_store(settings)
    assert (Path(settings.home) / "mlflow.db").stat().st_size > 0
