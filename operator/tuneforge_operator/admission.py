"""What the validating admission webhook decides about a FineTuneJob (pure, no I/O).

The API server has already checked the CRD schema; this runs the same pydantic models the
operator and the trainer run, so a job that would only fail later (an unknown field, a name
too long for its children, a `..` in a URI, a cross-field rule) is refused at `kubectl apply`
with one readable message naming the field. Once the RayJob exists (`status.rayJobName` set)
the spec it was built from is fixed: a change to anything but `spec.suspend` is refused.

An UPDATE that leaves the spec and the applied configuration alone (kopf's finalizer and
annotations, labels, deletion) is always admitted, so an object stored before the webhook
existed can still be handled and deleted.

The tenancy rules need the runtimes ConfigMap, so the webhook applies them after `review`, to
the spec `tenancy_subject` picks: a new job, or a changed spec whose RayJob does not exist yet.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from tuneforge.api import FineTuneJob, FineTuneJobSpec
from tuneforge.api.base import error_messages
from tuneforge_operator.builder import MUTABLE_SPEC_FIELDS, changed_immutable_fields

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
"""What `kubectl apply` sent, verbatim: the only place an unknown field survives the API
server's pruning (it drops unknown fields before admission on servers without
`fieldValidation`), so misspelt fields are looked for here too."""


def review(
    operation: str, new: Mapping[str, Any] | None, old: Mapping[str, Any] | None
) -> str | None:
    """Why the request is refused (one message, every problem), or None to admit it."""
    if operation not in ("CREATE", "UPDATE") or new is None:
        return None
    if (new.get("metadata") or {}).get("deletionTimestamp"):
        return None
    if operation == "UPDATE" and old is not None and not _user_change(old, new):
        return None
    problems = _model_errors(new) or _applied_errors(new, old)
    if not problems and operation == "UPDATE" and old is not None:
        problems = _immutable_errors(old, new)
    return "; ".join(problems) or None


def tenancy_subject(
    operation: str, new: Mapping[str, Any] | None, old: Mapping[str, Any] | None
) -> FineTuneJobSpec | None:
    """The spec the tenancy rules must judge in this request, or None (nothing to judge)."""
    if operation not in ("CREATE", "UPDATE") or new is None:
        return None
    if (new.get("metadata") or {}).get("deletionTimestamp"):
        return None
    if operation == "UPDATE" and old is not None:
        if old.get("spec") == new.get("spec") or (old.get("status") or {}).get("rayJobName"):
            return None
    try:
        return FineTuneJobSpec.model_validate(new.get("spec") or {})
    except ValidationError:
        return None


def _user_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return old.get("spec") != new.get("spec") or _applied(old) != _applied(new)


def _model_errors(obj: Mapping[str, Any]) -> list[str]:
    meta = obj.get("metadata") or {}
    try:
        FineTuneJob.model_validate(
            {
                "metadata": {k: meta[k] for k in ("name", "namespace") if k in meta},
                "spec": obj.get("spec") or {},
            }
        )
    except ValidationError as error:
        return error_messages(error, FineTuneJob)
    return []


def _applied(obj: Mapping[str, Any]) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    return str(value) if value is not None else None


def _applied_errors(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[str]:
    """Unknown fields in what `kubectl apply` sent (only when this request changed it)."""
    text = _applied(new)
    if text is None or (old is not None and _applied(old) == text):
        return []
    try:
        applied = json.loads(text)
    except ValueError:
        return []
    if not isinstance(applied, dict) or applied.get("kind") != "FineTuneJob":
        return []
    document = {k: v for k, v in applied.items() if k != "status"}
    # Metadata was checked on the object itself (the server may have generated the name).
    document["metadata"] = {"name": (new.get("metadata") or {}).get("name", "")}
    try:
        FineTuneJob.model_validate(document)
    except ValidationError as error:
        return error_messages(error, FineTuneJob)
    return []


def _immutable_errors(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    rayjob = (old.get("status") or {}).get("rayJobName")
    if not rayjob:
        return []
    changed = changed_immutable_fields(_normalised(old), _normalised(new))
    if not changed:
        return []
    mutable = ", ".join(f"spec.{name}" for name in sorted(MUTABLE_SPEC_FIELDS))
    return [
        f"{', '.join(changed)}: cannot change once the RayJob exists (status.rayJobName is "
        f"{rayjob}): create a new FineTuneJob for a new run; only {mutable} may change"
    ]


def _normalised(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with defaults filled in, so that spelling out a default is no change."""
    raw = dict(obj.get("spec") or {})
    try:
        return FineTuneJobSpec.model_validate(raw).to_wire()
    except ValidationError:
        return raw
