"""Constants of the API group and the base class every API model shares."""

from __future__ import annotations

import difflib
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

GROUP = "tuneforge.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "FineTuneJob"
PLURAL = "finetunejobs"
SINGULAR = "finetunejob"
SHORT_NAME = "ftj"


class ApiModel(BaseModel):
    """Base of every API object: camelCase on the wire, snake_case in Python.

    Unknown fields are refused (`extra="forbid"`), as the CRD's structural schema prunes
    them: a misspelt field is an error here rather than a silently ignored setting.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
        validate_assignment=True,
        use_attribute_docstrings=True,
    )

    def to_wire(self) -> dict[str, object]:
        """Dump as the Kubernetes API sees it: camelCase, JSON types, no unset optionals."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def error_messages(error: ValidationError, model: type[BaseModel]) -> list[str]:
    """One readable line per error of `model.model_validate`, each starting with the field.

    `spec.lora.alhpa: unknown field (did you mean alpha?)`; enum errors name the value given
    and the allowed ones; messages of cross-field rules, which already name their field, are
    kept as they are.
    """
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = _unknown_field(model, item["loc"])
        elif item["type"] == "enum":
            message = f"{item['input']!r} is not allowed: use one of {item['ctx']['expected']}"
        if not where or message.startswith(f"{where}.") or message.startswith(f"{where} "):
            lines.append(message)
        else:
            lines.append(f"{where}: {message}")
    return lines


def _unknown_field(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    parent = _model_at(model, loc[:-1])
    known = sorted(_wire_names(parent)) if parent is not None else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return f"unknown field (did you mean {close[0]}?)"
    return f"unknown field (known fields: {', '.join(known)})" if known else "unknown field"


def _wire_names(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def _model_at(model: type[BaseModel], path: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that validates the object at `path` (list indexes skipped)."""
    current: type[BaseModel] = model
    for part in path:
        if isinstance(part, int):
            continue
        field = next(
            (info for name, info in current.model_fields.items() if part in (name, info.alias)),
            None,
        )
        found = _model_in(field.annotation) if field is not None else None
        if found is None:
            return None
        current = found
    return current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `X`, `X | None` or `list[X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
