"""TuneForge: fine-tune Stable Diffusion 1.5 on Kubernetes and serve the results.

The `tuneforge` package holds the API models (the one definition of a FineTuneJob), the
SDK client, the CLI and helpers that need no torch.
"""

from tuneforge.api import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    FineTuneJob,
    FineTuneJobSpec,
    FineTuneJobStatus,
)
from tuneforge.client import Client

__all__ = [
    "Client",
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "FineTuneJob",
    "FineTuneJobSpec",
    "FineTuneJobStatus",
]
__version__ = "0.1.0"
