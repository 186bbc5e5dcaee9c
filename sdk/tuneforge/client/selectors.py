"""Kubernetes equality-based label selectors, evaluated locally (embedded backend)."""

from __future__ import annotations


def matches_selector(labels: dict[str, str], selector: str | None) -> bool:
    """Whether `labels` satisfy `selector` (`a=b,c!=d,e,!f`; empty selects everything)."""
    if not selector or not selector.strip():
        return True
    for raw in selector.split(","):
        term = raw.strip()
        if not term:
            continue
        if "!=" in term:
            key, value = (part.strip() for part in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (part.strip() for part in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif " in " in term or " notin " in term:
            raise ValueError(
                f"label selector {selector!r}: set-based terms ({term!r}) are not supported "
                "by the embedded backend; use key=value, key!=value, key or !key"
            )
        elif term not in labels:
            return False
    return True
