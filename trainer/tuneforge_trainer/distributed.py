"""Ray Train wiring: join or start Ray, build the `TorchTrainer`, run it.

Checkpoints go through Ray Train's storage: `RunConfig(storage_path="bucket/prefix",
storage_filesystem=pyarrow S3FileSystem(...))` on S3, or a local folder. The run is named
after the job, so a second run of the same job finds the first one's checkpoints and resumes;
`FailureConfig(max_failures)` restarts dead workers from the latest checkpoint.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from tuneforge.api import FineTuneJob
from tuneforge.settings import Settings
from tuneforge.storage import is_s3_uri
from tuneforge_trainer.errors import TrainingFailed
from tuneforge_trainer.plan import WorkerPlan, run_name
from tuneforge_trainer.ray_quiet import SETUP_HOOK

FORWARDED_ENV_PREFIXES = ("TUNEFORGE_", "AWS_", "MLFLOW_", "HF_", "OMP_", "MKL_")
FORWARDED_ENV = ("TRANSFORMERS_OFFLINE", "DO_NOT_TRACK", "TOKENIZERS_PARALLELISM", "NO_PROXY")
SECRET_NAME_MARKERS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL", "AUTH")
"""A variable whose name contains one of these is never forwarded (`AWS_SECRET_ACCESS_KEY`,
`AWS_ACCESS_KEY_ID`, `AWS_SESSION_TOKEN`, `MLFLOW_TRACKING_TOKEN`, `MLFLOW_TRACKING_PASSWORD`,
`TUNEFORGE_S3_SECRET_KEY`, `HF_TOKEN`, ...): Ray keeps a job's `runtime_env` in its GCS and
returns it from its state API. Workers get credentials from their own environment instead:
pods from the runtime's Secrets (`envFrom`), a local Ray's workers from the driver's process."""


def is_forwarded(name: str) -> bool:
    """Whether a variable travels in `runtime_env`: a known setting, and not secret-bearing."""
    known = name.startswith(FORWARDED_ENV_PREFIXES) or name in FORWARDED_ENV
    return known and not any(marker in name.upper() for marker in SECRET_NAME_MARKERS)


def forwarded_env() -> dict[str, str]:
    """The non-secret variables workers need (endpoints, offline flags, thread counts)."""
    env = {key: value for key, value in os.environ.items() if is_forwarded(key)}
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def connect_ray(settings: Settings, cpus_needed: int) -> bool:
    """Join `settings.ray_address`, or start a local Ray; True when this call started one."""
    import ray

    if ray.is_initialized():
        return False
    runtime_env: dict[str, Any] = {"env_vars": forwarded_env()}
    if settings.ray_address:
        ray.init(address=settings.ray_address, runtime_env=runtime_env, log_to_driver=True)
        return False
    temp_dir = tempfile.mkdtemp(prefix="tfray-", dir="/tmp")  # short: unix socket paths
    os.environ.pop("RAY_ADDRESS", None)
    # No dashboard here: its state API's absence is explained, and kept quiet, in ray_quiet.
    runtime_env["worker_process_setup_hook"] = SETUP_HOOK
    ray.init(
        address="local",
        num_cpus=max(os.cpu_count() or 1, cpus_needed),
        include_dashboard=False,
        _temp_dir=temp_dir,
        runtime_env=runtime_env,
        log_to_driver=True,
    )
    return True


def storage_for(checkpoint_uri: str, settings: Settings) -> tuple[str, Any]:
    """`(storage_path, storage_filesystem)` for Ray Train (the S3 bucket is created if missing)."""
    if not is_s3_uri(checkpoint_uri):
        path = checkpoint_uri.removeprefix("file://")
        os.makedirs(path, exist_ok=True)
        return path, None
    import pyarrow.fs

    from tuneforge.storage import ensure_bucket

    bucket_and_prefix = checkpoint_uri.removeprefix("s3://").strip("/")
    ensure_bucket(bucket_and_prefix.split("/", 1)[0], settings)
    host, secure = settings.s3_host_and_secure()
    secret = settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None
    filesystem = pyarrow.fs.S3FileSystem(
        endpoint_override=host,
        scheme="https" if secure else "http",
        access_key=settings.s3_access_key,
        secret_key=secret,
        region=settings.s3_region or "us-east-1",
    )
    return bucket_and_prefix, filesystem


def build_trainer(
    job: FineTuneJob,
    plan: WorkerPlan,
    storage_path: str,
    filesystem: Any,
    max_failures: int,
    callbacks: list[Any] | None = None,
) -> Any:
    """A `TorchTrainer` (Ray Train V2) running `ray_worker_entry` on `resources.workers`."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from tuneforge_trainer.loop import ray_worker_entry

    resources = job.spec.resources
    use_gpu = resources.gpus_per_worker > 0
    per_worker: dict[str, float] = {"CPU": resources.cpus_per_worker}
    if use_gpu:
        per_worker["GPU"] = resources.gpus_per_worker
    return TorchTrainer(
        ray_worker_entry,
        train_loop_config=plan.model_dump(),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=resources.workers,
            use_gpu=use_gpu,
            resources_per_worker=per_worker,
            accelerator_type=resources.accelerator_type if use_gpu else None,
        ),
        run_config=RunConfig(
            name=run_name(job),
            storage_path=storage_path,
            storage_filesystem=filesystem,
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=callbacks or None,
        ),
    )


def fit(trainer: Any) -> Any:
    """`trainer.fit()`; a worker failure after all retries becomes `TrainingFailed`."""
    from ray.train import TrainingFailedError

    try:
        result = trainer.fit()
    except TrainingFailedError as error:
        raise TrainingFailed(f"training failed: {error}") from error
    if getattr(result, "error", None) is not None:
        raise TrainingFailed(f"training failed: {result.error}")
    if result.checkpoint is None:
        raise TrainingFailed("training finished without a checkpoint to register")
    return result
