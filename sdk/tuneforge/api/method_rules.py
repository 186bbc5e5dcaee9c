"""Each training method's spec rules, one class per method, in one place.

A method's rules say which spec section only it reads (and whether that section must be
set), which other methods' sections it also reads (pivotal tuning: `textualInversion`),
whether its jobs train a LoRA (and so may carry `spec.lora`), and any rule of its own
(DreamBooth: prior preservation needs a class prompt). Every rule comes in the three forms
its readers need, side by side:

- a Python check whose message names the field and the fix (`FineTuneJobSpec`'s validator);
- an `anyOf` value validation for the API server (the generated CRD; the API server this
  project supports predates CEL);
- a sentence for the reference page (`tuneforge.api.reference`).

A new method is one `MethodRules` subclass in `METHOD_RULES`; the trainer's side of the
method (preflight, parameter groups) is its `TrainingMethod` in `tuneforge_trainer.methods`.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, ClassVar, Protocol

from tuneforge.api.dreambooth import EXTRACTED_LORA_SUFFIX, EXTRACTED_NAME_MAX


class Method(str, Enum):
    """The fine-tuning method."""

    LORA = "lora"
    DREAMBOOTH = "dreambooth"
    TEXTUAL_INVERSION = "textualInversion"
    PIVOTAL = "pivotal"


class FineTuneJobSpec(Protocol):
    """What the rules read of `tuneforge.api.spec.FineTuneJobSpec` (no import: no cycle)."""

    @property
    def method(self) -> Method:
        """The job's method."""

    @property
    def lora(self) -> Any:
        """`spec.lora` or None."""

    @property
    def dreambooth(self) -> Any:
        """`spec.dreambooth` or None."""

    @property
    def textual_inversion(self) -> Any:
        """`spec.textualInversion` or None."""

    @property
    def pivotal(self) -> Any:
        """`spec.pivotal` or None."""

    @property
    def training(self) -> Any:
        """`spec.training`."""

    @property
    def output(self) -> Any:
        """`spec.output`."""

    @property
    def dataset(self) -> Any:
        """`spec.dataset`."""


def method_is(*methods: Method) -> dict[str, Any]:
    """Schema branch: `spec.method` is one of `methods`."""
    return {"properties": {"method": {"enum": [method.value for method in methods]}}}


def absent(field: str) -> dict[str, Any]:
    """Schema branch that holds exactly when `spec.<field>` is absent.

    `not: {}` fails for any value, and `properties` only applies to fields that are present;
    when the branch fails the API server's message names the field itself.
    """
    return {"properties": {field: {"not": {}}}}


class MethodRules:
    """The spec rules of one training method (the base: no section, no LoRA, no own rules)."""

    method: ClassVar[Method]
    """The method these rules are for."""
    section: ClassVar[str | None] = None
    """Python name of the spec section only this method reads (e.g. `dreambooth`)."""
    section_required: ClassVar[str | None] = None
    """When the section must be set: what to put in it (the fix in the error message)."""
    shared_sections: ClassVar[dict[str, str]] = {}
    """Sections another method owns that this method also reads and requires: Python name ->
    what to put in it (pivotal tuning reads textual inversion's tokens)."""
    lora_schema: ClassVar[dict[str, Any] | None] = None
    """Schema branch under which this method's jobs train a LoRA (None: they never do)."""
    lora_doc: ClassVar[str | None] = None
    """How the reference page says when this method trains a LoRA."""

    def trains_lora(self, spec: FineTuneJobSpec) -> bool:
        """Whether a job of this method trains a LoRA (and reads `spec.lora`)."""
        return False

    def own_errors(self, spec: FineTuneJobSpec) -> list[str]:
        """Broken rules of this method beyond its section and LoRA."""
        return []

    def own_schema_rules(self) -> list[dict[str, Any]]:
        """The API server's form of `own_errors`."""
        return []

    def own_docs(self) -> list[str]:
        """The reference page's form of `own_errors`."""
        return []

    @classmethod
    def wire_section(cls) -> str | None:
        """The section's camelCase name."""
        return None if cls.section is None else wire_name(cls.section)

    def required_fix(self, section: str) -> str | None:
        """What to put in `section` when this method requires it; None when it does not."""
        if section == self.section:
            return self.section_required
        return self.shared_sections.get(section)


def wire_name(section: str) -> str:
    """A section's camelCase name (`textual_inversion` -> `textualInversion`)."""
    head, *rest = section.split("_")
    return head + "".join(part.title() for part in rest)


class LoraRules(MethodRules):
    """`lora`: always trains a LoRA; no section of its own."""

    method = Method.LORA
    lora_schema = method_is(Method.LORA)
    lora_doc = "`method: lora`"

    def trains_lora(self, spec: FineTuneJobSpec) -> bool:
        """Always."""
        return True


class DreamBoothRules(MethodRules):
    """`dreambooth`: full UNet, or a LoRA with `exportLora`; prior preservation needs a class."""

    method = Method.DREAMBOOTH
    section = "dreambooth"
    # The dreambooth-only rule makes a method check redundant here; naming exportLora in the
    # branch makes the API server's 422 point at the switch to flip.
    lora_schema = {
        "required": ["dreambooth"],
        "properties": {
            "dreambooth": {
                "required": ["exportLora"],
                "properties": {"exportLora": {"enum": [True]}},
            }
        },
    }
    lora_doc = "`method: dreambooth` with `spec.dreambooth.exportLora: true`"

    def trains_lora(self, spec: FineTuneJobSpec) -> bool:
        """With `dreambooth.exportLora`."""
        return spec.dreambooth is not None and spec.dreambooth.export_lora

    def own_errors(self, spec: FineTuneJobSpec) -> list[str]:
        """Prior preservation without a class prompt; extractLora with exportLora, or with a
        registered model name too long for its `-lora` sibling."""
        errors = []
        dreambooth = spec.dreambooth
        if (
            dreambooth is not None
            and dreambooth.prior_preservation
            and not spec.dataset.class_prompt
        ):
            errors.append(
                "spec.dataset.classPrompt is required when dreambooth.priorPreservation is "
                "true: set it to the class, e.g. 'a photo of a dog', or disable "
                "priorPreservation"
            )
        if dreambooth is not None and dreambooth.extract_lora is not None:
            if dreambooth.export_lora:
                errors.append(
                    "spec.dreambooth.extractLora extracts a LoRA from a full DreamBooth, but "
                    "spec.dreambooth.exportLora trains a LoRA already: remove one of the two"
                )
            if len(spec.output.registered_model) > EXTRACTED_NAME_MAX:
                errors.append(
                    f"spec.output.registeredModel is longer than {EXTRACTED_NAME_MAX} "
                    "characters: with dreambooth.extractLora the LoRA is registered as "
                    f"'<registeredModel>{EXTRACTED_LORA_SUFFIX}' (at most 128): shorten the name"
                )
        return errors

    def own_schema_rules(self) -> list[dict[str, Any]]:
        """Prior preservation needs a class prompt (the first branch names classPrompt)."""
        return [
            {
                "anyOf": [
                    {
                        "required": ["dataset"],
                        "properties": {
                            "dataset": {"required": ["classPrompt"]},
                            "dreambooth": {"properties": {"priorPreservation": {"enum": [True]}}},
                        },
                    },
                    {
                        "properties": {
                            "dreambooth": {"properties": {"priorPreservation": {"enum": [False]}}}
                        }
                    },
                ]
            },
            {
                "anyOf": [
                    {
                        "properties": {
                            "dreambooth": {"properties": {"exportLora": {"enum": [False]}}}
                        }
                    },
                    {"properties": {"dreambooth": absent("extractLora")}},
                ]
            },
            {
                "anyOf": [
                    {
                        "properties": {
                            "output": {
                                "properties": {"registeredModel": {"maxLength": EXTRACTED_NAME_MAX}}
                            }
                        }
                    },
                    {"properties": {"dreambooth": absent("extractLora")}},
                ]
            },
        ]

    def own_docs(self) -> list[str]:
        """The prior-preservation rule."""
        return [
            "`spec.dreambooth.priorPreservation: true` requires `spec.dataset.classPrompt`.",
            "`spec.dreambooth.extractLora` is only allowed without `exportLora` (it extracts a "
            "LoRA from a full DreamBooth), sets exactly one of `rank` and `energy`, and needs "
            f"`spec.output.registeredModel` of at most {EXTRACTED_NAME_MAX} characters (the "
            f"LoRA is registered as `<registeredModel>{EXTRACTED_LORA_SUFFIX}`).",
        ]


TOKENS_REQUIRED = "set textualInversion.placeholderToken (e.g. '<my-concept>') and initializerToken"


class TextualInversionRules(MethodRules):
    """`textualInversion`: its section is required; never a LoRA."""

    method = Method.TEXTUAL_INVERSION
    section = "textual_inversion"
    section_required = TOKENS_REQUIRED


class PivotalRules(MethodRules):
    """`pivotal`: new tokens (`textualInversion`, required) and a LoRA (`lora`, optional)
    trained together; `pivotal` (optional) holds the embeddings' learning rate and warm-up."""

    method = Method.PIVOTAL
    section = "pivotal"
    shared_sections = {"textual_inversion": TOKENS_REQUIRED}
    lora_schema = method_is(Method.PIVOTAL)
    lora_doc = "`method: pivotal`"

    def trains_lora(self, spec: FineTuneJobSpec) -> bool:
        """Always (with the new tokens)."""
        return True

    def own_errors(self, spec: FineTuneJobSpec) -> list[str]:
        """An embeddings-only warm-up as long as the whole training leaves the LoRA untrained
        (a comparison of two values: the models check it, the API server cannot)."""
        pivotal = spec.pivotal
        if pivotal is None or spec.method != Method.PIVOTAL:
            return []
        if pivotal.embedding_warmup_steps >= spec.training.max_steps:
            return [
                "spec.pivotal.embeddingWarmupSteps must be less than training.maxSteps (the "
                "LoRA trains only after the warm-up): lower it, or raise maxSteps"
            ]
        return []

    def own_docs(self) -> list[str]:
        """The warm-up rule."""
        return [
            "`spec.pivotal.embeddingWarmupSteps` must be less than `spec.training.maxSteps` "
            "(checked by the models and the admission webhook, not the CRD schema)."
        ]


METHOD_RULES: dict[Method, MethodRules] = {
    rules.method: rules
    for rules in (LoraRules(), DreamBoothRules(), TextualInversionRules(), PivotalRules())
}
"""The rules of every method, by method."""


def section_readers(section: str) -> list[Method]:
    """The methods that read `section`: its owner first, then those that share it."""
    owners = [r.method for r in METHOD_RULES.values() if r.section == section]
    sharers = [r.method for r in METHOD_RULES.values() if section in r.shared_sections]
    return owners + sharers


def owned_sections() -> list[str]:
    """Every method's own section (Python names), in method order."""
    return [r.section for r in METHOD_RULES.values() if r.section is not None]


def rules_for(method: Method) -> MethodRules:
    """The rules of `method`."""
    return METHOD_RULES[method]


def method_errors(spec: FineTuneJobSpec) -> list[str]:
    """Every broken method rule of `spec`, as messages naming the field and the fix."""
    method = spec.method
    errors: list[str] = []
    for section in owned_sections():
        wire = wire_name(section)
        present = getattr(spec, section) is not None
        readers = section_readers(section)
        fix = rules_for(method).required_fix(section)
        if fix and not present:
            errors.append(f"spec.{wire} is required when method is {method.value}: {fix}")
        if method not in readers and present:
            allowed = " or ".join(reader.value for reader in readers)
            errors.append(
                f"spec.{wire} is only used with method {allowed} "
                f"(method is {method.value}): remove it or change the method"
            )
    if spec.lora is not None and not rules_for(method).trains_lora(spec):
        errors.append(
            f"spec.lora is only used with {_lora_methods_text()}: remove spec.lora, "
            "set exportLora, or change the method"
        )
    for rules in METHOD_RULES.values():
        errors.extend(rules.own_errors(spec))
    return errors


def method_schema_rules() -> list[dict[str, Any]]:
    """The method rules as `anyOf` value validations for the CRD's spec schema.

    The API server reports the errors of one failing branch: the one with the most passing
    checks, the first on a tie. Each rule therefore lists first the branch whose error names
    the field the user has to fix. Each rule also holds for a method TuneForge does not know,
    so that the API server's only complaint about `method: hypernetwork` is `spec.method` and
    its allowed values.
    """
    rules_list: list[dict[str, Any]] = []
    for section in owned_sections():
        wire = wire_name(section)
        readers = section_readers(section)
        for reader in readers:
            if rules_for(reader).required_fix(section):
                others = [method for method in METHOD_RULES if method != reader]
                rules_list.append(
                    {"anyOf": [{"required": [wire], **method_is(reader)}, method_is(*others)]}
                )
        rules_list.append({"anyOf": [absent(wire), method_is(*readers)]})
    lora_branches = [r.lora_schema for r in METHOD_RULES.values() if r.lora_schema is not None]
    rules_list.append({"anyOf": [absent("lora"), *lora_branches]})
    for rules in METHOD_RULES.values():
        rules_list.extend(rules.own_schema_rules())
    unknown_method = {"properties": {"method": {"not": {"enum": [m.value for m in Method]}}}}
    return [{"anyOf": [*rule["anyOf"], unknown_method]} for rule in rules_list]


def method_rule_docs() -> list[str]:
    """The method rules as sentences for the reference page."""
    docs: list[str] = []
    for section in owned_sections():
        wire = wire_name(section)
        readers = section_readers(section)
        docs.extend(
            f"`method: {reader.value}` requires `spec.{wire}`."
            for reader in readers
            if rules_for(reader).required_fix(section)
        )
        allowed = " or ".join(f"`method: {reader.value}`" for reader in readers)
        docs.append(f"`spec.{wire}` is only allowed with {allowed}.")
    docs.append(f"`spec.lora` is only allowed with {_lora_methods_doc()}.")
    for rules in METHOD_RULES.values():
        docs.extend(rules.own_docs())
    return docs


def _lora_methods_text() -> str:
    return ", or ".join(
        (rules.lora_doc or "").replace("`", "").replace("method: ", "method ")
        for rules in METHOD_RULES.values()
        if rules.lora_doc
    )


def _lora_methods_doc() -> str:
    return ", or ".join(rules.lora_doc for rules in METHOD_RULES.values() if rules.lora_doc)
