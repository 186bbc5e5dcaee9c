"""`tuneforge serve --config`: camelCase keys as documented, validated before Ray starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuneforge.cli.main import app
from tuneforge.cli.serve import serving_args
from tuneforge.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "home"))
    return Settings()


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "serving.yaml"
    path.write_text(text)
    return path


def test_camel_case_cache_dir_replaces_the_default(settings: Settings, tmp_path: Path) -> None:
    config = _config(
        tmp_path, "cacheDir: /data/cache\nadapterLruSize: 2\nlimits: {maxWidth: 256}\n"
    )
    args = serving_args(settings, "/models/sd15", config)
    assert args["cache_dir"] == "/data/cache"
    assert args["adapter_lru_size"] == 2 and args["limits"] == {"maxWidth": 256}
    assert "cacheDir" not in args and args["base_model"] == "/models/sd15"


def test_snake_case_keys_work_too_and_base_model_comes_from_the_file(
    settings: Settings, tmp_path: Path
) -> None:
    config = _config(tmp_path, "base_model: /models/a\ncache_dir: /data/c\n")
    args = serving_args(settings, None, config)
    assert args["base_model"] == "/models/a" and args["cache_dir"] == "/data/c"


def test_without_cache_dir_the_cache_is_under_home(settings: Settings) -> None:
    args = serving_args(settings, "/models/sd15", None)
    assert args["cache_dir"] == str(Path(settings.home) / "serving-cache")


def test_one_setting_in_both_forms_is_refused(settings: Settings, tmp_path: Path) -> None:
    config = _config(tmp_path, "cacheDir: /a\ncache_dir: /b\n")
    with pytest.raises(ValueError, match="'cache_dir' is given twice"):
        serving_args(settings, "/m", config)


def test_a_misspelt_setting_is_named_as_the_file_wrote_it(
    settings: Settings, tmp_path: Path
) -> None:
    config = _config(tmp_path, "adapterLruSiz: 2\n")
    with pytest.raises(ValueError) as raised:
        serving_args(settings, "/m", config)
    assert str(raised.value) == (
        f"{config}: invalid serving config:\n  adapterLruSiz: Extra inputs are not permitted"
    )


def test_serve_refuses_a_bad_config_before_starting_ray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "home"))
    config = _config(tmp_path, "cacheDir: /data/cache\nmaxConcurrentRequests: 0\n")
    result = CliRunner().invoke(
        app, ["serve", "--base-model", str(tmp_path), "--config", str(config)]
    )
    assert result.exit_code == 2, result.output
    assert "maxConcurrentRequests: Input should be greater than or equal to 1" in result.output
    assert "cache_dir" not in result.output and "starting Ray Serve" not in result.output
    assert not ray.is_initialized()


def test_serve_refuses_to_start_without_a_token_unless_auth_is_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    from tuneforge.cli.serve import require_auth_choice

    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TUNEFORGE_SERVING_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve", "--base-model", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "serving auth is on and no token is configured" in result.output
    assert "TUNEFORGE_SERVING_TOKEN" in result.output and "auth.enabled: false" in result.output
    assert "starting Ray Serve" not in result.output
    assert not ray.is_initialized()
    disabled = _config(tmp_path, "auth: {enabled: false}\n")
    args = serving_args(Settings(), str(tmp_path), disabled)
    require_auth_choice(args, disabled)  # explicitly off: allowed
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")
    with_file = _config(tmp_path, f"auth: {{tokenFile: {token_file}}}\n")
    require_auth_choice(serving_args(Settings(), str(tmp_path), with_file), with_file)


def test_an_embedded_token_travels_in_a_private_file(tmp_path: Path) -> None:
    from tuneforge.embedded.serving import write_token_file

    path = write_token_file("s3cret")
    try:
        assert path.read_text() == "s3cret"
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
    finally:
        path.unlink()
        path.parent.rmdir()
