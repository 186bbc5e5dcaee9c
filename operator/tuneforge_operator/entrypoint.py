"""The RayJob entrypoint: `python -m tuneforge_trainer run --job '<FineTuneJob JSON>'`.

The whole FineTuneJob travels inline as JSON (DESIGN.md, operator -> trainer contract). The
entrypoint is shell text, and KubeRay may pass it through two shells: in its default
`K8sJobMode` it pastes the entrypoint into a bash script for `ray job submit -- ...`, whose
CLI re-joins the arguments with `subprocess.list2cmdline` (Windows quoting rules) before
the head runs them with `/bin/sh -c`. To survive every layer the JSON is made *shell-inert*:

- every backslash starts a `\\uXXXX` escape (no `\\n`, `\\"`, `\\\\` short forms);
- `$`, backtick and `"` inside strings are `\\u`-escaped, so the only `"` are JSON's own;
- separators contain spaces, so `list2cmdline` always wraps the argument in double quotes.

The result is valid JSON that decodes to the same object, quoted once with `shlex`.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

TRAINER_COMMAND = ("python", "-m", "tuneforge_trainer", "run", "--job")
"""The trainer's command line, before the job JSON."""

_SHORT_ESCAPES = {
    '"': "\\u0022",
    "\\": "\\u005c",
    "/": "\\u002f",
    "b": "\\u0008",
    "f": "\\u000c",
    "n": "\\u000a",
    "r": "\\u000d",
    "t": "\\u0009",
}
_ESCAPE_OR_SPECIAL = re.compile(r'\\(u[0-9a-fA-F]{4}|["\\/bfnrt])|[$`]')


def _inert(match: re.Match[str]) -> str:
    escape = match.group(1)
    if escape is None:
        return f"\\u{ord(match.group(0)):04x}"
    if escape.startswith("u"):
        return match.group(0)
    return _SHORT_ESCAPES[escape]


def shell_inert_json(document: Any) -> str:
    """JSON for `document` that no shell layer alters (see the module docstring)."""
    text = json.dumps(document, ensure_ascii=True, separators=(", ", ": "), sort_keys=False)
    return _ESCAPE_OR_SPECIAL.sub(_inert, text)


def build_entrypoint(job_manifest: dict[str, Any]) -> str:
    """The shell command KubeRay runs for this job."""
    return shlex.join([*TRAINER_COMMAND, shell_inert_json(job_manifest)])


def parse_entrypoint(entrypoint: str) -> dict[str, Any] | None:
    """The job manifest inside an entrypoint built by `build_entrypoint`, or None."""
    try:
        words = shlex.split(entrypoint)
    except ValueError:
        return None
    if tuple(words[: len(TRAINER_COMMAND)]) != TRAINER_COMMAND or len(words) != 6:
        return None
    try:
        document = json.loads(words[-1])
    except json.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None
