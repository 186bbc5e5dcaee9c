"""Start the serving application (`tuneforge_serving.app:build_app`) on an embedded Ray.

The app is loaded by its import path, exactly as `serve run` and a RayService do, so the
`tuneforge` package never imports the serving package. The Ray cluster is local (started
here, with its own temporary folder) unless `Settings.ray_address` names one.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.embedded.environment import child_environment
from tuneforge.errors import ConfigurationError, TuneForgeError
from tuneforge.quiet import native_noise_filtered
from tuneforge.settings import Settings
from tuneforge.sigterm import raise_on_sigterm

SERVING_APP = "tuneforge_serving.app:build_app"
READY_TIMEOUT_S = 300.0
_ENV_KEYS = (
    "TUNEFORGE_HOME",
    "TUNEFORGE_MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_URI",
    "TUNEFORGE_S3_ENDPOINT",
    "TUNEFORGE_S3_ACCESS_KEY",
    "TUNEFORGE_S3_SECRET_KEY",
    "TUNEFORGE_S3_SECURE",
    "TUNEFORGE_S3_REGION",
    "HF_HUB_OFFLINE",
    "HF_HUB_DISABLE_TELEMETRY",
    "MLFLOW_DISABLE_TELEMETRY",
    "DO_NOT_TRACK",
    "OMP_NUM_THREADS",
)


_SECRET_KEYS = ("TUNEFORGE_S3_ACCESS_KEY", "TUNEFORGE_S3_SECRET_KEY")
"""Credentials: never in `runtime_env` (stored in Ray's GCS) of a Ray started here."""
_ENV_KEYS_WITHOUT_SECRETS = tuple(key for key in _ENV_KEYS if key not in _SECRET_KEYS)


def _secret_env(env: dict[str, str]) -> dict[str, str]:
    """The credentials of `env`, for this process's environment (a local Ray inherits it)."""
    return {key: env[key] for key in _SECRET_KEYS if key in env}


def load_by_import_path(import_path: str) -> Any:
    """The object named `module:attribute` (a dynamic import, as `serve run` does)."""
    module_name, _, attribute = import_path.partition(":")
    if not attribute:
        raise ValueError(f"import path {import_path!r}: use module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"cannot import {module_name!r} ({exc}): install the serving extra "
            "(pip install 'tuneforge[serving]')"
        ) from exc
    return getattr(module, attribute)


def serving_config(settings: Settings, base_model: str, **overrides: Any) -> dict[str, Any]:
    """`build_app` args for embedded serving: CPU-friendly defaults, cache under home."""
    config: dict[str, Any] = {
        "base_model": base_model,
        "cache_dir": str(Path(settings.home).expanduser() / "serving-cache"),
    }
    config.update(overrides)
    return config


@dataclass
class EmbeddedServing:
    """A running serving app on an embedded Ray; `stop()` shuts both down."""

    url: str
    """Base URL of the HTTP API."""
    started_ray: bool
    """Whether this process started the Ray cluster (then `stop` shuts it down)."""
    temp_dir: Path | None = None
    """Ray's temporary folder for a cluster started here."""
    token_dir: Path | None = None
    """The private folder of the token file given to the app (removed by `stop`)."""
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Shut down the app (and the Ray cluster when it was started here)."""
        if self._stopped:
            return
        self._stopped = True
        import ray
        from ray import serve

        try:
            # A Ray started here goes down whole with `ray.shutdown`; shutting Serve down
            # first only races its controller's graceful shutdown (a raylet error line).
            if ray.is_initialized() and not self.started_ray:
                serve.shutdown()  # type: ignore[no-untyped-call]
        finally:
            if self.token_dir is not None:
                shutil.rmtree(self.token_dir, ignore_errors=True)
            if self.started_ray:
                ray.shutdown()
                if self.temp_dir is not None:
                    shutil.rmtree(self.temp_dir, ignore_errors=True)


def write_token_file(token: str) -> Path:
    """The bearer token in a file only this user can read, in its own temporary folder.

    The app reads it as `auth.tokenFile`: the token never travels in Ray's `runtime_env`
    (kept in Ray's GCS) nor in the app's arguments.
    """
    folder = Path(tempfile.mkdtemp(prefix="tf-serving-auth-"))  # mode 0700
    path = folder / "token"
    path.touch(mode=0o600)
    path.write_text(token)
    return path


def start_serving(
    settings: Settings,
    config: dict[str, Any],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    num_cpus: int | None = None,
    import_path: str = SERVING_APP,
    ready_timeout_s: float = READY_TIMEOUT_S,
    token: str | None = None,
) -> EmbeddedServing:
    """Start Ray (unless configured), Ray Serve on host:port and the app; wait until ready.

    A `token` replaces the config's `auth` with a private token file holding it (the local
    Ray's replicas read it; on a remote `ray_address` give `auth.tokenFile` on its nodes).
    """
    import ray
    from ray import serve

    # Importing Serve sets its driver logger to INFO ("Started Serve", "Application ... is
    # ready"): the caller says what it started in its own words (tuneforge.quiet).
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    env = child_environment(settings)
    forwarded = _ENV_KEYS if settings.ray_address else _ENV_KEYS_WITHOUT_SECRETS
    env_vars = {key: env[key] for key in forwarded if key in env}
    handle = EmbeddedServing(url=f"http://{host}:{port}", started_ray=False)
    if token is not None:
        token_path = write_token_file(token)
        handle.token_dir = token_path.parent
        config = {**config, "auth": {"token_file": str(token_path)}}
    try:  # a failure or SIGTERM anywhere from here stops what was started
        if not ray.is_initialized():
            if settings.ray_address:
                ray.init(address=settings.ray_address, runtime_env={"env_vars": env_vars})
            else:
                handle.temp_dir = Path(tempfile.mkdtemp(prefix="tf-ray-"))
                handle.started_ray = True
                os.environ.update(_secret_env(env))  # the local Ray's replicas inherit them
                with native_noise_filtered():
                    ray.init(
                        address="local",
                        num_cpus=num_cpus,
                        include_dashboard=False,
                        runtime_env={"env_vars": env_vars},
                        object_store_memory=256 * 2**20,
                        _temp_dir=str(handle.temp_dir),
                        log_to_driver=False,
                        logging_level=logging.WARNING,
                    )
        raise_on_sigterm()  # ray.init replaced the handler with one that aborts
        serve.start(http_options={"host": host, "port": port})
        build_app = load_by_import_path(import_path)
        serve.run(build_app(config), name="tuneforge", route_prefix="/", blocking=False)
        wait_until_ready(handle.url, ready_timeout_s)
    except BaseException:
        handle.stop()
        raise
    return handle


def wait_until_ready(url: str, timeout_s: float) -> None:
    """Poll `GET {url}/readyz` until it answers 200."""
    import httpx

    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url + "/readyz", timeout=5.0)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise TuneForgeError(f"serving at {url} was not ready within {timeout_s:g} s ({last})")
