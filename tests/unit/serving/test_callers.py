"""Serving per caller: each token may use and list only its adapters (403 naming the rule)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

SMALL = {"prompt": "a photo of a cat", "steps": 2, "width": 64, "height": 64, "seed": 5}
MAIN, TEAM_A, TEAM_B = "main-token", "team-a-token", "team-b-token"


def _auth(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    files = {}
    for name, token in (("main", MAIN), ("a", TEAM_A), ("b", TEAM_B)):
        files[name] = tmp_path / f"{name}.token"
        files[name].write_text(token + "\n")
    return {
        "tokenFile": str(files["main"]),
        "callers": [
            {"name": "team-a", "tokenFile": str(files["a"]), "adapterPrefixes": ["lora"]},
            {"name": "team-b", "tokenFile": str(files["b"]), "adapters": ["ti-cat"]},
        ],
        **extra,
    }


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def api(
    engine: Any, folder_source: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    from tuneforge_serving.api import ApiService, create_api
    from tuneforge_serving.backends import LocalBackend

    auth = _auth(tmp_path_factory.mktemp("tokens"))
    config = type(engine.config).model_validate(
        {"base_model": engine.config.base_model, "adapter_lru_size": 3, "auth": auth}
    )
    service = ApiService(
        config, {"sd15": LocalBackend(engine)}, folder_source, config.auth.load_token()
    )
    with TestClient(create_api(service)) as client:
        yield client


def _names(api: TestClient, token: str) -> set[str]:
    answer = api.get("/v1/adapters", headers=_bearer(token))
    assert answer.status_code == 200, answer.text
    return {entry["name"] for entry in answer.json()["adapters"]}


def test_listing_shows_only_the_callers_adapters(api: TestClient) -> None:
    everything = _names(api, MAIN)
    assert {"lora0", "ti-cat"} <= everything
    assert _names(api, TEAM_A) == {n for n in everything if n.startswith("lora")}
    assert _names(api, TEAM_B) == {"ti-cat"}


def test_a_caller_uses_its_adapters_and_gets_403_for_others(api: TestClient) -> None:
    own = {**SMALL, "adapters": [{"name": "lora0", "weight": 0.8}]}
    assert api.post("/v1/generate", json=own, headers=_bearer(TEAM_A)).status_code == 200
    for name in ("ti-cat", "team-b.not-registered"):  # no 404: a 403 tells nothing of existence
        other = {**SMALL, "adapters": [{"name": name}]}
        answer = api.post("/v1/generate", json=other, headers=_bearer(TEAM_A))
        assert answer.status_code == 403, answer.text
        detail = answer.json()["detail"]
        assert f"adapter {name!r} is outside caller 'team-a'" in detail
        assert "adapterPrefixes/adapters: names starting 'lora'" in detail
    load = api.post("/v1/adapters/lora0/load", headers=_bearer(TEAM_B))
    assert load.status_code == 403 and "caller 'team-b'" in load.json()["detail"]
    assert api.post("/v1/adapters/ti-cat/load", headers=_bearer(TEAM_B)).status_code == 200


def test_metrics_and_docs_take_any_callers_token_and_nothing_else(api: TestClient) -> None:
    for path in ("/metrics", "/docs", "/openapi.json"):
        assert api.get(path).status_code == 401, path
        assert api.get(path, headers=_bearer("nope")).status_code == 401, path
        assert api.get(path, headers=_bearer(TEAM_B)).status_code == 200, path
    assert api.get("/healthz").status_code == 200


def test_caller_tokens_alone_are_enough_and_must_differ(tmp_path: Path) -> None:
    from tuneforge_serving.config import AuthConfig

    auth = _auth(tmp_path)
    only_callers = AuthConfig.model_validate({**auth, "tokenFile": None, "tokenEnv": None})
    assert only_callers.load_token() is None
    assert [c.name for c, _ in only_callers.load_callers()] == ["team-a", "team-b"]
    (tmp_path / "b.token").write_text(TEAM_A)
    with pytest.raises(ValueError, match="share a token"):
        AuthConfig.model_validate(auth).load_token()
    (tmp_path / "b.token").write_text("")
    with pytest.raises(ValueError, match=r"auth.callers\[team-b\].tokenFile .* is empty"):
        AuthConfig.model_validate(auth).load_token()
    assert AuthConfig.model_validate({**auth, "enabled": False}).load_callers() == []


@pytest.mark.parametrize(
    ("caller", "message"),
    [
        ({"name": "x"}, r"auth.callers\[x\]: set tokenEnv or tokenFile"),
        ({"name": "x", "tokenEnv": "T", "adapterPrefixes": [""]}, "empty prefix"),
    ],
)
def test_a_bad_caller_is_refused_naming_it(caller: dict[str, Any], message: str) -> None:
    from tuneforge_serving.config import AuthConfig

    with pytest.raises(ValueError, match=message):
        AuthConfig.model_validate({"callers": [caller]})
    with pytest.raises(ValueError, match="each caller name may appear once"):
        AuthConfig.model_validate({"callers": [{"name": "a", "tokenEnv": "T"}] * 2})
