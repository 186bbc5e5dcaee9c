"""`check_job`: the pre-flight checks alone (`python -m tuneforge_trainer run --check`)."""

from __future__ import annotations

from tuneforge.api import FineTuneJob
from tuneforge.settings import Settings
from tuneforge_trainer.preflight import PreparedInputs, preflight
from tuneforge_trainer.runner import tracking_uri_for
from tuneforge_trainer.trainer_settings import TrainerSettings


def check_job(job: FineTuneJob, settings: Settings | None = None) -> PreparedInputs:
    """Run every pre-flight check of `job`; raises with one message on the first problem."""
    settings = settings or Settings()
    trainer_settings = TrainerSettings()
    return preflight(
        job,
        settings,
        tracking_uri_for(settings),
        trainer_settings.checkpoints(settings),
        trainer_settings.cache_dir(settings),
    )
