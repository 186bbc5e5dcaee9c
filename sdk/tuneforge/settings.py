"""Process settings: where external services are. Never part of a FineTuneJob spec.

Read from the environment (prefix `TUNEFORGE_`), with the usual AWS/MLflow variables as
fallbacks so that the same Secret can feed MLflow's own client and TuneForge. This is the one
place that reads TuneForge's environment variables; everything else takes a `Settings`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, ByteSize, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SERVING_URL = "http://127.0.0.1:8000"
"""Where `tuneforge serve` listens by default, and so where `tuneforge generate` calls."""


class Settings(BaseSettings):
    """Endpoints and credentials for S3, MLflow, Ray and Kubernetes."""

    model_config = SettingsConfigDict(
        env_prefix="TUNEFORGE_", extra="ignore", populate_by_name=True
    )

    home: Path = Field(default_factory=lambda: Path.home() / ".tuneforge")
    """Embedded mode's state directory (MLflow store, artifacts, job records, caches)."""
    s3_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "TUNEFORGE_S3_ENDPOINT", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL"
        ),
    )
    """S3 endpoint, `host:port` or a URL (`http://host:port` means no TLS)."""
    s3_access_key: str | None = Field(
        default=None, validation_alias=AliasChoices("TUNEFORGE_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
    )
    """S3 access key."""
    s3_secret_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("TUNEFORGE_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"),
    )
    """S3 secret key."""
    s3_secure: bool | None = None
    """Use TLS for S3; by default taken from the endpoint's scheme (https) or false."""
    s3_region: str | None = Field(
        default=None, validation_alias=AliasChoices("TUNEFORGE_S3_REGION", "AWS_DEFAULT_REGION")
    )
    """S3 region (optional)."""
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TUNEFORGE_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"),
    )
    """MLflow tracking URI; embedded mode defaults to a SQLite store under `home`."""
    ray_address: str | None = Field(
        default=None, validation_alias=AliasChoices("TUNEFORGE_RAY_ADDRESS", "RAY_ADDRESS")
    )
    """Ray cluster to join; unset starts a local Ray in embedded mode."""
    namespace: str = "default"
    """Kubernetes namespace for the SDK's Kubernetes backend."""
    kubeconfig: str | None = Field(
        default=None, validation_alias=AliasChoices("TUNEFORGE_KUBECONFIG", "KUBECONFIG")
    )
    """Kubeconfig file for the Kubernetes backend (in-cluster config when unset and available)."""
    backend: str = "local"
    """SDK backend: `local` (embedded) or `kubernetes`."""
    mlflow_experiment: str = "tuneforge"
    """MLflow experiment that holds the training runs."""
    registry_retry_attempts: int = Field(default=8, ge=1, le=100)
    """Attempts in all at a registry operation (registering an adapter) while MLflow does not
    answer (see `tuneforge.registry.retry`)."""
    registry_retry_backoff_s: float = Field(default=2.0, ge=0)
    """Pause after the first failed attempt; doubled after each further one."""
    registry_retry_max_backoff_s: float = Field(default=30.0, ge=0)
    """Longest pause between two attempts."""
    registry_retry_total_s: float = Field(default=300.0, ge=0)
    """No attempt starts later than this many seconds after the first."""
    mlflow_http_max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        validation_alias=AliasChoices(
            "TUNEFORGE_MLFLOW_HTTP_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
        ),
    )
    """MLflow's own retries of one HTTP request (MLflow's default: 7)."""
    mlflow_http_backoff_factor: int = Field(
        default=1,
        ge=0,
        le=120,
        validation_alias=AliasChoices(
            "TUNEFORGE_MLFLOW_HTTP_BACKOFF_FACTOR", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
        ),
    )
    """MLflow's backoff factor between those retries, seconds (MLflow's default: 2)."""
    mlflow_http_timeout_s: int = Field(
        default=30,
        ge=1,
        validation_alias=AliasChoices(
            "TUNEFORGE_MLFLOW_HTTP_TIMEOUT_S", "MLFLOW_HTTP_REQUEST_TIMEOUT"
        ),
    )
    """MLflow's connect and read timeout of one HTTP request (MLflow's default: 120)."""
    serving_url: str = DEFAULT_SERVING_URL
    """Serving endpoint `tuneforge generate` calls."""
    serving_token: SecretStr | None = None
    """Bearer token `tuneforge generate` sends (the serving app's `auth.tokenEnv` value)."""
    serving_base_model: str | None = None
    """Base model `tuneforge serve` loads when `--base-model` is not given."""
    assets_cache: str | None = None
    """Folder of the tiny-asset cache; default `$XDG_CACHE_HOME/tuneforge/assets`."""
    job_scope: str | None = None
    """The job's namespace and tenancy policy as JSON (`TUNEFORGE_JOB_SCOPE`), set by the operator
    on every Ray container of a RayJob when a tenancy policy is in force
    (`tuneforge.tenancy.JobScope`); unset in embedded mode."""
    download_max_bytes: ByteSize = Field(default=ByteSize(20 * 2**30), gt=0)
    """Most bytes one `s3://` or `hf://` download (a dataset, a base model, class images, an
    adapter, an evaluator model) may bring (`TUNEFORGE_DOWNLOAD_MAX_BYTES`, e.g. `20GiB`);
    larger ones are refused before the first byte. Keep it within the runtime's model-cache
    size."""
    download_max_objects: int = Field(default=100_000, gt=0)
    """Most objects (files) one `s3://` or `hf://` download may bring
    (`TUNEFORGE_DOWNLOAD_MAX_OBJECTS`)."""
    xdg_cache_home: str | None = Field(
        default=None, validation_alias=AliasChoices("XDG_CACHE_HOME")
    )
    """The user's cache folder (`XDG_CACHE_HOME`); `~/.cache` when unset."""

    def missing_s3_settings(self) -> list[str]:
        """The TUNEFORGE_S3_* variables (endpoint, access key, secret key) left unset or empty."""
        return [
            variable
            for variable, value in (
                ("TUNEFORGE_S3_ENDPOINT", self.s3_endpoint),
                ("TUNEFORGE_S3_ACCESS_KEY", self.s3_access_key),
                ("TUNEFORGE_S3_SECRET_KEY", self.s3_secret_key),
            )
            if not value
        ]

    def s3_host_and_secure(self) -> tuple[str, bool]:
        """The endpoint as minio wants it (`host:port`) and whether to use TLS."""
        if not self.s3_endpoint:
            raise ValueError(
                "S3 is not configured: set TUNEFORGE_S3_ENDPOINT (and TUNEFORGE_S3_ACCESS_KEY/SECRET_KEY)"
            )
        endpoint = self.s3_endpoint
        secure = endpoint.startswith("https://")
        for scheme in ("http://", "https://"):
            endpoint = endpoint.removeprefix(scheme)
        return endpoint.rstrip("/"), self.s3_secure if self.s3_secure is not None else secure

    def s3_url(self) -> str:
        """The endpoint as a URL (for MLflow's and pyarrow's S3 clients)."""
        host, secure = self.s3_host_and_secure()
        return f"{'https' if secure else 'http'}://{host}"

    def embedded_tracking_uri(self) -> str:
        """MLflow URI used when none is configured: a SQLite store under `home`."""
        return f"sqlite:///{self.home / 'mlflow.db'}"

    def resolved_tracking_uri(self) -> str:
        """The MLflow tracking URI in force: the configured one, else the SQLite store."""
        return self.mlflow_tracking_uri or self.embedded_tracking_uri()

    def local_artifact_root(self) -> Path | None:
        """Where the embedded SQLite store keeps artifacts (`home/artifacts`).

        None when an MLflow server is configured: the server decides where artifacts go.
        """
        if self.mlflow_tracking_uri:
            return None
        return Path(self.home).expanduser() / "artifacts"

    def assets_cache_dir(self) -> Path:
        """The tiny-asset cache: `assets_cache`, else `<XDG cache>/tuneforge/assets`."""
        if self.assets_cache:
            return Path(self.assets_cache)
        base = Path(self.xdg_cache_home) if self.xdg_cache_home else Path.home() / ".cache"
        return base / "tuneforge" / "assets"
