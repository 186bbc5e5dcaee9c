"""Trainer-only settings from the environment (never from the job spec).

- `TUNEFORGE_CHECKPOINT_URI`: where Ray Train keeps checkpoints: `s3://bucket/prefix`
  (the bucket is created if missing) or a local folder. Default: `s3://tuneforge-checkpoints/runs`
  when S3 is configured, else `<TUNEFORGE_HOME>/checkpoints` (embedded mode).
- `TUNEFORGE_TRAINER_CACHE`: download cache for models and data (default `<home>/cache`).
- `TUNEFORGE_TRAINER_MAX_FAILURES`: worker failures survived by restarting from the latest
  checkpoint (Ray Train `FailureConfig.max_failures`, default 2).
- `TUNEFORGE_DEEPSPEED_ZERO_STAGE`: force the DeepSpeed ZeRO stage (2 or 3); by default
  ZeRO-3 when the full UNet trains, else ZeRO-2. The driver hands it to the workers in
  their `WorkerPlan`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tuneforge.settings import Settings

DEFAULT_S3_CHECKPOINTS = "s3://tuneforge-checkpoints/runs"


class TrainerSettings(BaseSettings):
    """Checkpoint storage, cache and failure handling."""

    model_config = SettingsConfigDict(env_prefix="TUNEFORGE_", extra="ignore")

    checkpoint_uri: str | None = None
    """Ray Train storage: `s3://bucket/prefix` or a local folder."""
    trainer_cache: Path | None = None
    """Download cache for base models and datasets."""
    trainer_max_failures: int = Field(default=2, ge=0)
    """Worker failures to survive (restart from the latest checkpoint)."""
    deepspeed_zero_stage: int | None = Field(default=None, ge=0, le=3)
    """DeepSpeed ZeRO stage to force; unset: 3 when the full UNet trains, else 2."""

    def checkpoints(self, settings: Settings) -> str:
        """The checkpoint storage URI in force."""
        if self.checkpoint_uri:
            return self.checkpoint_uri
        if settings.s3_endpoint:
            return DEFAULT_S3_CHECKPOINTS
        return str(settings.home / "checkpoints")

    def cache_dir(self, settings: Settings) -> Path:
        """The download cache in force."""
        return self.trainer_cache or settings.home / "cache"
