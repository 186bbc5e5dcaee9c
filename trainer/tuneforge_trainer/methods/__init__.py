"""Fine-tuning methods (shaped like peft's tuners: one module per method)."""

from __future__ import annotations

from tuneforge.api import FineTuneJobSpec, Method
from tuneforge_trainer.components import Components
from tuneforge_trainer.methods.base import ExportedAdapter, TrainingMethod
from tuneforge_trainer.methods.dreambooth import DreamBoothMethod
from tuneforge_trainer.methods.lora import LoraMethod
from tuneforge_trainer.methods.pivotal import PivotalMethod
from tuneforge_trainer.methods.textual_inversion import TextualInversionMethod

METHODS: dict[Method, type[TrainingMethod]] = {
    method.method: method
    for method in (LoraMethod, DreamBoothMethod, TextualInversionMethod, PivotalMethod)
}


def method_class(method: Method) -> type[TrainingMethod]:
    """The class that trains `method` (its `preflight` runs before any model is loaded)."""
    return METHODS[method]


def build_method(spec: FineTuneJobSpec, components: Components) -> TrainingMethod:
    """The method object for `spec.method`."""
    return method_class(spec.method)(spec, components)


__all__ = [
    "METHODS",
    "DreamBoothMethod",
    "ExportedAdapter",
    "LoraMethod",
    "PivotalMethod",
    "TextualInversionMethod",
    "TrainingMethod",
    "build_method",
    "method_class",
]
