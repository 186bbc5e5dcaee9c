"""Build FineTuneJobs from a few arguments, so a notebook needs no YAML.

Every builder returns a validated `FineTuneJob`; invalid combinations raise pydantic's
`ValidationError` naming the field, exactly as a YAML file would.

    >>> job = lora_job("sks-dog", dataset="s3://data/dog", instance_prompt="a photo of sks dog",
    ...                registered_model="dog-lora", steps=400, rank=8)
    >>> job.spec.lora.rank
    8
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneforge.api import (
    BaseModelSpec,
    DatasetSpec,
    DreamBoothSpec,
    FineTuneJob,
    FineTuneJobSpec,
    LoraSpec,
    Method,
    ObjectMeta,
    OutputSpec,
    PivotalSpec,
    ResourcesSpec,
    TextualInversionSpec,
    TrainingSpec,
    ValidationSpec,
)
from tuneforge.api.spec import DEFAULT_BASE_MODEL
from tuneforge.contract import DEFAULT_LORA_TARGETS


def _uri(location: str | Path) -> str:
    """A dataset or model location as the API wants it (local paths made absolute)."""
    text = str(location)
    if "://" in text:
        return text
    return str(Path(text).expanduser().resolve())


def _job(
    name: str,
    method: Method,
    *,
    dataset: DatasetSpec,
    base_model: str | Path,
    registered_model: str,
    alias: str | None,
    training: TrainingSpec,
    resources: ResourcesSpec | None,
    validation_prompts: list[str] | None,
    labels: dict[str, str] | None,
    extra_spec: dict[str, Any],
) -> FineTuneJob:
    spec = FineTuneJobSpec(
        method=method,
        base_model=BaseModelSpec(uri=_uri(base_model)),
        dataset=dataset,
        training=training,
        resources=resources or ResourcesSpec(),
        validation=ValidationSpec(prompts=list(validation_prompts or [])),
        output=OutputSpec(registered_model=registered_model, alias=alias),
        **extra_spec,
    )
    return FineTuneJob(metadata=ObjectMeta(name=name, labels=dict(labels or {})), spec=spec)


def cpu_resources(workers: int = 1, cpus_per_worker: int = 1, memory: str = "4Gi") -> ResourcesSpec:
    """Resources for a CPU-only run (embedded mode, laptops, tests)."""
    return ResourcesSpec(
        workers=workers,
        gpus_per_worker=0,
        cpus_per_worker=cpus_per_worker,
        memory_per_worker=memory,
    )


def lora_job(
    name: str,
    dataset: str | Path,
    instance_prompt: str,
    *,
    registered_model: str,
    base_model: str | Path = DEFAULT_BASE_MODEL,
    steps: int = 500,
    rank: int = 4,
    alpha: float | None = None,
    learning_rate: float = 1e-4,
    batch_size: int = 1,
    resolution: int = 512,
    seed: int = 0,
    alias: str | None = None,
    target_modules: list[str] | None = None,
    train_text_encoder: bool = False,
    resources: ResourcesSpec | None = None,
    validation_prompts: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> FineTuneJob:
    """A LoRA job on the UNet attention projections (alpha defaults to the rank, as in YAML)."""
    lora = LoraSpec(
        rank=rank,
        alpha=alpha,
        target_modules=list(target_modules if target_modules is not None else DEFAULT_LORA_TARGETS),
        train_text_encoder=train_text_encoder,
    )
    return _job(
        name,
        Method.LORA,
        dataset=DatasetSpec(
            uri=_uri(dataset), instance_prompt=instance_prompt, resolution=resolution
        ),
        base_model=base_model,
        registered_model=registered_model,
        alias=alias,
        training=TrainingSpec(
            max_steps=steps, learning_rate=learning_rate, batch_size=batch_size, seed=seed
        ),
        resources=resources,
        validation_prompts=validation_prompts,
        labels=labels,
        extra_spec={"lora": lora},
    )


def dreambooth_job(
    name: str,
    dataset: str | Path,
    instance_prompt: str,
    *,
    registered_model: str,
    base_model: str | Path = DEFAULT_BASE_MODEL,
    class_prompt: str | None = None,
    prior_preservation: bool = False,
    export_lora: bool = False,
    steps: int = 400,
    learning_rate: float = 5e-6,
    batch_size: int = 1,
    resolution: int = 512,
    seed: int = 0,
    alias: str | None = None,
    resources: ResourcesSpec | None = None,
    validation_prompts: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> FineTuneJob:
    """A DreamBooth job (full UNet, or a LoRA trained DreamBooth-style with `export_lora`)."""
    extra: dict[str, Any] = {
        "dreambooth": DreamBoothSpec(prior_preservation=prior_preservation, export_lora=export_lora)
    }
    return _job(
        name,
        Method.DREAMBOOTH,
        dataset=DatasetSpec(
            uri=_uri(dataset),
            instance_prompt=instance_prompt,
            class_prompt=class_prompt,
            resolution=resolution,
        ),
        base_model=base_model,
        registered_model=registered_model,
        alias=alias,
        training=TrainingSpec(
            max_steps=steps, learning_rate=learning_rate, batch_size=batch_size, seed=seed
        ),
        resources=resources,
        validation_prompts=validation_prompts,
        labels=labels,
        extra_spec=extra,
    )


def _token_inputs(
    dataset: str | Path,
    placeholder_token: str,
    initializer_token: str,
    num_vectors: int,
    instance_prompt: str | None,
    resolution: int,
) -> tuple[DatasetSpec, TextualInversionSpec]:
    """The dataset (prompt defaults to `a photo of <token>`) and the new tokens of a job that
    learns `placeholder_token` (textual inversion and pivotal tuning)."""
    dataset_spec = DatasetSpec(
        uri=_uri(dataset),
        instance_prompt=instance_prompt or f"a photo of {placeholder_token}",
        resolution=resolution,
    )
    tokens = TextualInversionSpec(
        placeholder_token=placeholder_token,
        initializer_token=initializer_token,
        num_vectors=num_vectors,
    )
    return dataset_spec, tokens


def textual_inversion_job(
    name: str,
    dataset: str | Path,
    placeholder_token: str,
    initializer_token: str,
    *,
    registered_model: str,
    instance_prompt: str | None = None,
    base_model: str | Path = DEFAULT_BASE_MODEL,
    num_vectors: int = 1,
    steps: int = 1000,
    learning_rate: float = 5e-4,
    batch_size: int = 1,
    resolution: int = 512,
    seed: int = 0,
    alias: str | None = None,
    resources: ResourcesSpec | None = None,
    validation_prompts: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> FineTuneJob:
    """A textual-inversion job learning `placeholder_token` (prompt defaults to `a photo of <token>`)."""
    dataset_spec, tokens = _token_inputs(
        dataset, placeholder_token, initializer_token, num_vectors, instance_prompt, resolution
    )
    return _job(
        name,
        Method.TEXTUAL_INVERSION,
        dataset=dataset_spec,
        base_model=base_model,
        registered_model=registered_model,
        alias=alias,
        training=TrainingSpec(
            max_steps=steps, learning_rate=learning_rate, batch_size=batch_size, seed=seed
        ),
        resources=resources,
        validation_prompts=validation_prompts,
        labels=labels,
        extra_spec={"textual_inversion": tokens},
    )


def pivotal_job(
    name: str,
    dataset: str | Path,
    placeholder_token: str,
    initializer_token: str,
    *,
    registered_model: str,
    instance_prompt: str | None = None,
    base_model: str | Path = DEFAULT_BASE_MODEL,
    num_vectors: int = 1,
    rank: int = 4,
    alpha: float | None = None,
    steps: int = 500,
    learning_rate: float = 1e-4,
    embedding_learning_rate: float | None = None,
    embedding_warmup_steps: int = 0,
    batch_size: int = 1,
    resolution: int = 512,
    seed: int = 0,
    alias: str | None = None,
    resources: ResourcesSpec | None = None,
    validation_prompts: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> FineTuneJob:
    """A pivotal-tuning job: `placeholder_token`'s embeddings and a LoRA trained together.

    `learning_rate` is the LoRA's; `embedding_learning_rate` the new tokens' (unset: the
    same); the first `embedding_warmup_steps` steps train only the embeddings. The prompt
    defaults to `a photo of <token>`.
    """
    dataset_spec, tokens = _token_inputs(
        dataset, placeholder_token, initializer_token, num_vectors, instance_prompt, resolution
    )
    return _job(
        name,
        Method.PIVOTAL,
        dataset=dataset_spec,
        base_model=base_model,
        registered_model=registered_model,
        alias=alias,
        training=TrainingSpec(
            max_steps=steps, learning_rate=learning_rate, batch_size=batch_size, seed=seed
        ),
        resources=resources,
        validation_prompts=validation_prompts,
        labels=labels,
        extra_spec={
            "textual_inversion": tokens,
            "lora": LoraSpec(rank=rank, alpha=alpha),
            "pivotal": PivotalSpec(
                embedding_learning_rate=embedding_learning_rate,
                embedding_warmup_steps=embedding_warmup_steps,
            ),
        },
    )
