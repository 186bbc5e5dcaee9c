"""The trainer → serving contract, in one place that imports no torch.

- `AdapterRef`: the `name`, `name/VERSION`, `name@alias` adapter reference (parse, format).
- `Tag`, `Metric`: MLflow tag and metric names; adapter file names and layouts
  (`AdapterFormat`); LoRA defaults.
- `AdapterManifest` with typed `lora` / `embeddings` sections (`tuneforge-adapter.json`).
- The trainer's stdout progress and result lines: `format_progress`, `parse_progress_line`, …

Trainer, operator, serving and SDK import these names; none spells the strings itself.
"""

from tuneforge.contract.manifest import (
    MANIFEST_FORMAT_VERSION,
    AdapterManifest,
    AdapterMethod,
    EmbeddingsSection,
    LoraSection,
)
from tuneforge.contract.names import (
    ADAPTER_ARTIFACT_PATH,
    ADAPTER_MANIFEST,
    DEFAULT_LORA_TARGETS,
    DEFAULT_SLOT_RANK,
    DEFAULT_TEXT_ENCODER_LORA_TARGETS,
    KOHYA_LORA_WEIGHTS,
    LORA_WEIGHTS,
    TI_EMBEDDINGS,
    AdapterFormat,
    Metric,
    Tag,
    default_lora_alpha,
    job_run_filter,
)
from tuneforge.contract.progress import (
    PROGRESS_PREFIX,
    RESULT_PREFIX,
    TrainingProgress,
    TrainingResult,
    format_progress,
    format_result,
    parse_event,
    parse_progress_line,
    parse_result_line,
)
from tuneforge.contract.reference import AdapterRef

__all__ = [
    "ADAPTER_ARTIFACT_PATH",
    "ADAPTER_MANIFEST",
    "DEFAULT_LORA_TARGETS",
    "DEFAULT_SLOT_RANK",
    "DEFAULT_TEXT_ENCODER_LORA_TARGETS",
    "KOHYA_LORA_WEIGHTS",
    "LORA_WEIGHTS",
    "MANIFEST_FORMAT_VERSION",
    "PROGRESS_PREFIX",
    "RESULT_PREFIX",
    "TI_EMBEDDINGS",
    "AdapterFormat",
    "AdapterManifest",
    "AdapterMethod",
    "AdapterRef",
    "EmbeddingsSection",
    "LoraSection",
    "Metric",
    "Tag",
    "TrainingProgress",
    "TrainingResult",
    "default_lora_alpha",
    "job_run_filter",
    "format_progress",
    "format_result",
    "parse_event",
    "parse_progress_line",
    "parse_result_line",
]
