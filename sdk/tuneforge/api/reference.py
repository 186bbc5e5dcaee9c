"""Generate the FineTuneJob field reference (docs/reference/finetunejob.md) from the models.

Every field of every model reachable from `FineTuneJob`, with its wire name, type, default,
constraints and description (the attribute docstring). Run
`python -m tuneforge.api.reference docs/reference/finetunejob.md` after changing the models;
a test fails while the checked-in page differs from what this prints.
"""

from __future__ import annotations

import json
import sys
import types
from enum import Enum
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from tuneforge.api.base import API_VERSION, KIND, SHORT_NAME
from tuneforge.api.job import FineTuneJob
from tuneforge.api.method_rules import method_rule_docs

_CONSTRAINTS: tuple[tuple[str, str], ...] = (
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("exclusiveMaximum", "< {}"),
    ("multipleOf", "multiple of {}"),
    ("minLength", "length ≥ {}"),
    ("maxLength", "length ≤ {}"),
    ("minItems", "items ≥ {}"),
    ("maxItems", "items ≤ {}"),
    ("pattern", "matches `{}`"),
)

TRAINING_RULES = (
    "`spec.training.lrWarmupSteps` must not exceed `spec.training.maxSteps` (checked by the "
    "models, the CLI and the operator; the API server cannot compare two fields).",
)
SECTION_RULES = (
    "`spec.evaluation` without `prompts` needs `spec.dataset.instancePrompt` (the paper's "
    "prompts are derived from it).",
    "`spec.evaluation.atValidationSteps` needs `spec.validation.everySteps` >= 1.",
    "`spec.output.promoteIf` needs `spec.output.alias`, and an `spec.evaluation` whose "
    "`metrics` include every metric it names.",
    "`spec.output.formats` must list `diffusers`, and may list `kohya` only when the job trains "
    "a LoRA (`method: lora`, or `dreambooth` with `exportLora: true`).",
)


def _anchor(name: str) -> str:
    return name.lower()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _referenced_types(annotation: Any) -> list[type]:
    """Model and enum classes mentioned in a field annotation (through Optional, list, dict)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel | Enum):
        return [annotation]
    found: list[type] = []
    for arg in get_args(annotation):
        found.extend(_referenced_types(arg))
    return found


def _models_in_order(root: type[BaseModel]) -> tuple[list[type[BaseModel]], list[type[Enum]]]:
    """Models and enums reachable from root, breadth first, each once."""
    models: list[type[BaseModel]] = [root]
    enums: list[type[Enum]] = []
    index = 0
    while index < len(models):
        for info in models[index].model_fields.values():
            for found in _referenced_types(info.annotation):
                if issubclass(found, BaseModel) and found not in models:
                    models.append(found)
                elif issubclass(found, Enum) and found not in enums:
                    enums.append(found)
        index += 1
    return models, enums


def _type_name(annotation: Any) -> str:
    """A short, linked type name for a field annotation."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        parts = [a for a in get_args(annotation) if a is not type(None)]
        return " or ".join(_type_name(a) for a in parts)
    if origin is list:
        (item,) = get_args(annotation)
        return f"list of {_type_name(item)}"
    if origin is dict:
        key, value = get_args(annotation)
        return f"map of {_type_name(key)} to {_type_name(value)}"
    if str(origin) == "typing.Literal":
        return " or ".join(f"`{json.dumps(a)}`" for a in get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel | Enum):
        return f"[{annotation.__name__}](#{_anchor(annotation.__name__)})"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    factory = info.default_factory
    if factory is not None and not isinstance(factory, type) and factory.__name__ != "<lambda>":
        return f"`{factory.__name__}()`"  # computed when the object is made (e.g. a timestamp)
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "all defaults"
    if isinstance(value, Enum):
        return f"`{value.value}`"
    return f"`{json.dumps(value)}`"


def _constraints(info: FieldInfo, node: dict[str, Any]) -> str:
    enums = [t for t in _referenced_types(info.annotation) if issubclass(t, Enum)]
    listed = ["one of " + ", ".join(f"`{member.value}`" for member in enum) for enum in enums]
    return "; ".join([*listed, *([_schema_constraints(node)] if _schema_constraints(node) else [])])


def _schema_constraints(node: dict[str, Any]) -> str:
    for branch in node.get("anyOf", []):
        if branch.get("type") != "null":
            node = {**branch, **{k: v for k, v in node.items() if k != "anyOf"}}
    found = [template.format(node[key]) for key, template in _CONSTRAINTS if key in node]
    items = node.get("items")
    if isinstance(items, dict):
        found += [f"each {text}" for text in _schema_constraints(items).split("; ") if text]
    return "; ".join(found)


def _model_section(model: type[BaseModel], schema_defs: dict[str, Any]) -> list[str]:
    schema = schema_defs.get(model.__name__) or model.model_json_schema(by_alias=True)
    properties: dict[str, Any] = schema.get("properties", {})
    lines = [
        f"## {model.__name__}",
        "",
        (model.__doc__ or "").strip().splitlines()[0],
        "",
        "| Field | Type | Default | Constraints | Description |",
        "|---|---|---|---|---|",
    ]
    for name, info in model.model_fields.items():
        wire = info.alias or name
        node = properties.get(wire, {})
        lines.append(
            "| "
            + " | ".join(
                _cell(part)
                for part in (
                    f"`{wire}`",
                    _type_name(info.annotation),
                    _default(info),
                    _constraints(info, node),
                    info.description or "",
                )
            )
            + " |"
        )
    lines.append("")
    return lines


def _enum_section(enum: type[Enum]) -> list[str]:
    values = ", ".join(f"`{member.value}`" for member in enum)
    return [f"## {enum.__name__}", "", (enum.__doc__ or "").strip(), "", f"One of: {values}.", ""]


def render_reference() -> str:
    """The whole Markdown page."""
    full_schema = FineTuneJob.model_json_schema(by_alias=True)
    schema_defs: dict[str, Any] = {FineTuneJob.__name__: full_schema, **full_schema["$defs"]}
    models, enums = _models_in_order(FineTuneJob)
    lines = [
        "<!-- Generated by `python -m tuneforge.api.reference` from tuneforge.api. Do not edit. -->",
        "# FineTuneJob reference",
        "",
        f"`apiVersion: {API_VERSION}`, `kind: {KIND}` (short name `{SHORT_NAME}`), namespaced. "
        "Field names are camelCase on the wire and snake_case in Python. Fields marked "
        "**required** must be set; the others show the default applied when unset. The same "
        "limits are enforced by the pydantic models (`tuneforge.api`) and by the "
        "CustomResourceDefinition that `tuneforge crd` prints.",
        "",
        "Contents: "
        + ", ".join(f"[{m.__name__}](#{_anchor(m.__name__)})" for m in models)
        + ", [cross-field rules](#cross-field-rules), enums: "
        + ", ".join(f"[{e.__name__}](#{_anchor(e.__name__)})" for e in enums)
        + ".",
        "",
    ]
    for model in models:
        lines += _model_section(model, schema_defs)
    lines += ["## Cross-field rules", ""]
    lines += [f"- {rule}" for rule in (*method_rule_docs(), *TRAINING_RULES, *SECTION_RULES)]
    lines.append("")
    for enum in enums:
        lines += _enum_section(enum)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the page, or write it to the path given as the only argument."""
    args = sys.argv[1:] if argv is None else argv
    text = render_reference()
    if args:
        Path(args[0]).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
