"""tuneforge.storage against SeaweedFS, tuneforge.registry against `mlflow server` + S3
and against the embedded SQLite store."""

from __future__ import annotations

import io
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.fixtures.services import MlflowService, S3Service
from tuneforge.contract import ADAPTER_MANIFEST, LORA_WEIGHTS, AdapterManifest, AdapterRef
from tuneforge.errors import (
    AdapterNotFoundError,
    ConfigurationError,
    RegistryError,
    StorageError,
    UnsafeArtifactError,
)
from tuneforge.registry import (
    AdapterRegistry,
    ResolvedAdapter,
    ensure_experiment,
    experiment_artifact_location,
)
from tuneforge.settings import Settings
from tuneforge.storage import (
    S3Uri,
    check_reachable,
    download_prefix,
    ensure_bucket,
    list_prefix,
    upload_dir,
)

pytestmark = pytest.mark.integration


def _s3_settings(s3: S3Service, home: Path, **extra: Any) -> Settings:
    return Settings(
        home=home,
        s3_endpoint=s3.url,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
        **extra,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- storage


def test_s3_upload_download_round_trip(s3: S3Service, tmp_path: Path) -> None:
    settings = _s3_settings(s3, tmp_path)
    bucket = ensure_bucket("s3://storage-round-trip/x", settings)
    assert ensure_bucket(bucket, settings) == "storage-round-trip"  # idempotent
    source = tmp_path / "src"
    (source / "nested" / "deeper").mkdir(parents=True)
    (source / "a.txt").write_bytes(b"alpha")
    (source / "nested" / "b.bin").write_bytes(bytes(range(256)) * 4000)  # ~1 MB
    (source / "nested" / "deeper" / "c.json").write_text("{}")
    uploaded = upload_dir(source, "s3://storage-round-trip/run-1/data", settings)
    assert uploaded == [
        "s3://storage-round-trip/run-1/data/a.txt",
        "s3://storage-round-trip/run-1/data/nested/b.bin",
        "s3://storage-round-trip/run-1/data/nested/deeper/c.json",
    ]
    assert list_prefix("s3://storage-round-trip/run-1/data", settings) == [
        "a.txt",
        "nested/b.bin",
        "nested/deeper/c.json",
    ]
    # "data" is a folder: a sibling prefix "data-old" must not leak into it.
    s3.client().put_object(bucket, "run-1/data-old/x.txt", io.BytesIO(b"x"), 1)

    calls: list[tuple[int, int]] = []
    dest = tmp_path / "dest"
    paths = download_prefix(
        "s3://storage-round-trip/run-1/data/", dest, settings, lambda d, t: calls.append((d, t))
    )
    assert [p.relative_to(dest).as_posix() for p in paths] == [
        "a.txt",
        "nested/b.bin",
        "nested/deeper/c.json",
    ]
    for path in paths:
        assert path.read_bytes() == (source / path.relative_to(dest)).read_bytes()
    total = 5 + 256 * 4000 + 2
    assert calls[-1] == (total, total)
    assert not list(dest.rglob("*.part"))

    # Present files of equal size are skipped: a local change of the same size survives.
    (dest / "a.txt").write_bytes(b"ALPHA")
    download_prefix("s3://storage-round-trip/run-1/data", dest, settings)
    assert (dest / "a.txt").read_bytes() == b"ALPHA"

    # A URI naming one object downloads that object.
    single = download_prefix("s3://storage-round-trip/run-1/data/a.txt", tmp_path / "one", settings)
    assert [p.read_bytes() for p in single] == [b"alpha"]


def test_s3_errors_are_clear(s3: S3Service, tmp_path: Path) -> None:
    settings = _s3_settings(s3, tmp_path)
    check_reachable(settings)
    with pytest.raises(StorageError, match="nothing found at s3://storage-errors/none"):
        ensure_bucket("storage-errors", settings)
        download_prefix("s3://storage-errors/none", tmp_path / "d", settings)
    with pytest.raises(StorageError, match="does not exist.*ensure_bucket"):
        (tmp_path / "src").mkdir()
        upload_dir(tmp_path / "src", "s3://no-such-bucket-here/x", settings)
    wrong = Settings(
        home=tmp_path, s3_endpoint=s3.url, s3_access_key=s3.access_key, s3_secret_key="wrong"
    )
    with pytest.raises(ConfigurationError, match="refused the credentials"):
        check_reachable(wrong)


def test_unreachable_s3_fails_fast(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        s3_endpoint=f"127.0.0.1:{_closed_port()}",
        s3_access_key="a",
        s3_secret_key="b",
    )
    with pytest.raises(StorageError, match=r"is unreachable .*TUNEFORGE_S3_ENDPOINT"):
        check_reachable(settings)


# --------------------------------------------------------------------------- registry helpers


def _adapter_dir(root: Path, job_uid: str | None = None, extra: dict[str, bytes] | None = None):  # type: ignore[no-untyped-def]
    root.mkdir(parents=True, exist_ok=True)
    save_file({"lora.down.weight": np.ones((4, 8), dtype=np.float32)}, str(root / LORA_WEIGHTS))
    manifest = AdapterManifest(
        method="lora",
        base_model="/models/tiny-sd",
        files=[LORA_WEIGHTS],
        lora={"rank": 4, "alpha": 4.0, "target_modules": ["to_q"]},
        job_name="dogs-job",
        job_uid=job_uid,
    )
    (root / ADAPTER_MANIFEST).write_text(manifest.model_dump_json())
    for name, data in (extra or {}).items():
        (root / name).write_bytes(data)
    return root, manifest


def _new_run(registry: AdapterRegistry) -> str:
    with registry.store.client() as client:
        name = f"registry-tests-{uuid.uuid4().hex[:8]}"
        experiment_id = client.create_experiment(
            name, artifact_location=experiment_artifact_location(registry.settings, name)
        )
        return str(client.create_run(experiment_id).info.run_id)


@pytest.fixture
def server_registry(mlflow_server: MlflowService, tmp_path: Path) -> AdapterRegistry:
    settings = _s3_settings(
        mlflow_server.s3, tmp_path / "home", mlflow_tracking_uri=mlflow_server.tracking_uri
    )
    return AdapterRegistry(settings)


@pytest.fixture(scope="module")
def embedded_registry(tmp_path_factory: pytest.TempPathFactory) -> AdapterRegistry:
    """One embedded store per module: creating the SQLite schema takes seconds."""
    home = tmp_path_factory.mktemp("embedded-home")
    return AdapterRegistry(Settings(home=home, mlflow_tracking_uri=None))


@pytest.fixture(params=["server", "embedded"])
def registry(request: pytest.FixtureRequest) -> AdapterRegistry:
    return request.getfixturevalue(f"{request.param}_registry")  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- registry


def test_register_resolve_fetch_list_promote(registry: AdapterRegistry, tmp_path: Path) -> None:
    name = f"dogs-{uuid.uuid4().hex[:6]}"
    folder, manifest = _adapter_dir(tmp_path / "a1", job_uid="uid-1")
    run_1 = _new_run(registry)
    first = registry.register(run_1, folder, manifest, name, alias="candidate")
    assert (first.name, first.version, first.run_id) == (name, 1, run_1)
    assert first.source.endswith("/adapter")
    if registry.settings.mlflow_tracking_uri:
        assert first.source.startswith("s3://mlflow-artifacts/")
    else:
        assert str(registry.settings.home / "artifacts") in first.source

    folder_2, manifest_2 = _adapter_dir(tmp_path / "a2", job_uid="uid-2")
    run_2 = _new_run(registry)
    second = registry.register(run_2, folder_2, manifest_2, name, tags={"team": "vision"})
    assert second.version == 2

    by_alias = registry.resolve(f"{name}@candidate")
    assert (by_alias.version, by_alias.run_id, by_alias.aliases) == (1, run_1, ("candidate",))
    assert registry.resolve(f"{name}/2").source == second.source
    latest = registry.resolve(name)
    assert latest.version == 2 and latest.aliases == ()
    assert registry.resolve(f"models:/{name}@candidate").version == 1
    assert registry.resolve(AdapterRef(name, alias="candidate")) == by_alias
    assert registry.resolve(AdapterRef(name, 2)).run_id == run_2

    cache = tmp_path / "cache"
    fetched = registry.fetch(by_alias, cache)
    assert fetched.path == cache / name / "1"
    assert sorted(p.name for p in fetched.path.iterdir()) == [LORA_WEIGHTS, ADAPTER_MANIFEST]
    assert fetched.manifest == manifest
    assert (fetched.path / LORA_WEIGHTS).read_bytes() == (folder / LORA_WEIGHTS).read_bytes()
    # Cached: a second fetch does not go to the source (proved by breaking the source).
    broken = ResolvedAdapter(name, 1, "s3://mlflow-artifacts/does-not-exist", run_1)
    assert registry.fetch(broken, cache).manifest == manifest

    promoted = registry.promote(name, 2, "prod")
    assert (promoted.version, promoted.aliases) == (2, ("prod",))
    registry.promote(name, 1, "prod")  # moving an alias
    assert registry.resolve(f"{name}@prod").version == 1

    summary = next(s for s in registry.list_adapters() if s.name == name)
    assert summary.latest_version == 2
    assert summary.versions == [1, 2]
    assert summary.aliases == {"candidate": "1", "prod": "1"}


def test_register_is_idempotent_per_job_uid(registry: AdapterRegistry, tmp_path: Path) -> None:
    name = f"retry-{uuid.uuid4().hex[:6]}"
    folder, manifest = _adapter_dir(tmp_path / "a", job_uid="uid-same")
    run_id = _new_run(registry)
    first = registry.register(run_id, folder, manifest, name)
    again = registry.register(run_id, folder, manifest, name, alias="prod")
    # A retry from another run of the same job (resume) must not register twice either.
    other_run = _new_run(registry)
    resumed = registry.register(other_run, folder, manifest, name)
    assert first == again == resumed
    assert registry.resolve(f"{name}@prod").version == first.version  # alias still applied
    summary = next(s for s in registry.list_adapters() if s.name == name)
    assert summary.versions == [1]
    # Without a job uid, the same run and folder are the identity.
    plain_folder, plain = _adapter_dir(tmp_path / "b", job_uid=None)
    one = registry.register(run_id, plain_folder, plain, f"{name}-plain")
    assert registry.register(run_id, plain_folder, plain, f"{name}-plain") == one


@pytest.mark.parametrize(
    "ref", ["missing-model", "missing-model/1", "missing-model@prod", "{name}/9", "{name}@nope"]
)
def test_unknown_refs_raise_adapter_not_found(
    registry: AdapterRegistry, tmp_path: Path, ref: str
) -> None:
    name = f"known-{uuid.uuid4().hex[:6]}"
    folder, manifest = _adapter_dir(tmp_path / "a", job_uid=uuid.uuid4().hex)
    registry.register(_new_run(registry), folder, manifest, name)
    reference = ref.format(name=name)
    with pytest.raises(AdapterNotFoundError) as info:
        registry.resolve(reference)
    assert info.value.ref == reference
    assert repr(reference) in str(info.value)
    if ref.startswith("missing") and "@" not in ref:
        with pytest.raises(AdapterNotFoundError):
            registry.promote("missing-model", 1, "prod")


@pytest.mark.parametrize("bad", ["pytorch_model.bin", "weights.pt", "model.pkl"])
def test_register_refuses_pickles(registry: AdapterRegistry, tmp_path: Path, bad: str) -> None:
    folder, manifest = _adapter_dir(tmp_path / "a", job_uid="uid-x", extra={bad: b"\x80\x04."})
    run_id = _new_run(registry)
    with pytest.raises(UnsafeArtifactError, match=bad.replace(".", r"\.")):
        registry.register(run_id, folder, manifest, f"unsafe-{uuid.uuid4().hex[:6]}")


def test_fetch_refuses_pickles_planted_in_the_source(
    server_registry: AdapterRegistry, mlflow_server: MlflowService, tmp_path: Path
) -> None:
    name = f"planted-{uuid.uuid4().hex[:6]}"
    folder, manifest = _adapter_dir(tmp_path / "a", job_uid=uuid.uuid4().hex)
    run_id = _new_run(server_registry)
    registered = server_registry.register(run_id, folder, manifest, name)
    uri = S3Uri.parse(registered.source)
    mlflow_server.s3.client().put_object(uri.bucket, uri.key("evil.pkl"), io.BytesIO(b"x"), 1)
    with pytest.raises(UnsafeArtifactError, match=r"evil\.pkl"):
        server_registry.fetch(server_registry.resolve(f"{name}/1"), tmp_path / "cache")
    assert not (tmp_path / "cache" / name / "1").exists()


def test_fetch_refuses_pickles_in_a_local_source(
    embedded_registry: AdapterRegistry, tmp_path: Path
) -> None:
    name = f"planted-{uuid.uuid4().hex[:6]}"
    folder, manifest = _adapter_dir(tmp_path / "a", job_uid=uuid.uuid4().hex)
    run_id = _new_run(embedded_registry)
    registered = embedded_registry.register(run_id, folder, manifest, name)
    source = Path(registered.source.removeprefix("file://"))
    (source / "optimizer.pt").write_bytes(b"x")
    with pytest.raises(UnsafeArtifactError, match=r"optimizer\.pt"):
        embedded_registry.fetch(embedded_registry.resolve(name), tmp_path / "cache")


def test_unreachable_mlflow_fails_fast(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, mlflow_tracking_uri=f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(RegistryError, match=r"is unreachable.*TUNEFORGE_MLFLOW_TRACKING_URI"):
        AdapterRegistry(settings).check_reachable()


def test_reachable_registries_pass_the_check(registry: AdapterRegistry) -> None:
    registry.check_reachable()


def test_embedded_store_keeps_artifacts_under_home_and_leaves_the_environment_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("_MLFLOW_SERVER_ARTIFACT_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)  # MLflow's default root would be ./mlruns here
    before = dict(os.environ)
    home = tmp_path / "home"
    registry = AdapterRegistry(Settings(home=home, mlflow_tracking_uri=None))
    assert registry.list_adapters() == []
    with registry.store.client() as client:
        assert client.get_experiment("0").artifact_location.startswith(str(home / "artifacts"))
        experiment_id = ensure_experiment(client, registry.settings)
        assert ensure_experiment(client, registry.settings) == experiment_id
        run = client.create_run(experiment_id)
    assert run.info.artifact_uri.startswith(str(home / "artifacts" / "tuneforge"))
    assert dict(os.environ) == before
    assert not (tmp_path / "mlruns").exists()


class _LateLookup:
    """A real MLflow client whose first lookup by name misses: the moment in which another job
    starting at the same time creates the experiment (the race of two concurrent trainers)."""

    def __init__(self, client: Any) -> None:
        self._client, self._missed = client, False

    def get_experiment_by_name(self, name: str) -> Any:
        if not self._missed:
            self._missed = True
            return None
        return self._client.get_experiment_by_name(name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._client, attribute)


def test_an_experiment_created_by_a_concurrent_job_is_found_not_an_error(
    registry: AdapterRegistry,
) -> None:
    with registry.store.client() as client:
        created = ensure_experiment(client, registry.settings, "created-concurrently")
        found = ensure_experiment(_LateLookup(client), registry.settings, "created-concurrently")
    assert found == created


def test_a_configured_server_gets_no_local_artifact_location(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, mlflow_tracking_uri="http://127.0.0.1:5000")
    assert experiment_artifact_location(settings, "tuneforge") is None
    local = Settings(home=tmp_path, mlflow_tracking_uri=None)
    assert experiment_artifact_location(local, "a/b c") == str(tmp_path / "artifacts" / "a_b_c")
