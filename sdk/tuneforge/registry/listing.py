"""Listing registered adapters (short for serving, detailed for the SDK) and moving aliases."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from tuneforge.contract import AdapterRef, Tag
from tuneforge.registry.fetch import resolve_adapter
from tuneforge.registry.mlflow_store import MlflowStore
from tuneforge.registry.results import (
    AdapterSummary,
    AdapterVersion,
    RegisteredAdapter,
    ResolvedAdapter,
)


def list_adapters(store: MlflowStore) -> list[AdapterSummary]:
    """Every registered model with its version numbers and aliases, sorted by name."""
    summaries = []
    for model, versions in _models_with_versions(store):
        numbers = sorted(int(v.version) for v in versions)
        aliases = {a: str(v) for a, v in (getattr(model, "aliases", None) or {}).items()}
        summaries.append(AdapterSummary(model.name, max(numbers, default=None), aliases, numbers))
    return summaries


def describe_adapters(store: MlflowStore) -> list[RegisteredAdapter]:
    """Every registered model with each version's aliases, run, source, job and creation time."""
    return [_described(model, versions) for model, versions in _models_with_versions(store)]


def promote_adapter(
    store: MlflowStore, name: str, version: int | str, alias: str
) -> ResolvedAdapter:
    """Point `alias` of `name` at `version`; AdapterNotFoundError if that version is missing."""
    resolved = resolve_adapter(store, AdapterRef.of(name, version))
    with store.client() as client:
        client.set_registered_model_alias(name, alias, str(resolved.version))
    return resolve_adapter(store, AdapterRef(name, alias=alias))


def _models_with_versions(store: MlflowStore) -> list[tuple[Any, list[Any]]]:
    with store.client() as client:
        models: list[Any] = []
        token = None
        while True:
            page = client.search_registered_models(max_results=100, page_token=token)
            models.extend(page)
            token = page.token
            if not token:
                break
        return [
            (model, store.versions(client, model.name))
            for model in sorted(models, key=lambda m: m.name)
        ]


def _described(model: Any, versions: list[Any]) -> RegisteredAdapter:
    aliases_by_version: dict[str, list[str]] = {}
    for alias, version in (getattr(model, "aliases", None) or {}).items():
        aliases_by_version.setdefault(str(version), []).append(alias)
    newest_first = sorted(versions, key=lambda v: int(v.version), reverse=True)
    return RegisteredAdapter(
        name=model.name,
        versions=tuple(
            AdapterVersion(
                version=str(v.version),
                aliases=tuple(
                    sorted(
                        set(aliases_by_version.get(str(v.version), []))
                        | set(getattr(v, "aliases", None) or [])
                    )
                ),
                run_id=v.run_id,
                source=v.source or "",
                job_name=(v.tags or {}).get(Tag.JOB_NAME),
                created=_rfc3339(v.creation_timestamp),
            )
            for v in newest_first
        ),
    )


def _rfc3339(millis: int | None) -> str | None:
    if not millis:
        return None
    return datetime.fromtimestamp(millis / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
