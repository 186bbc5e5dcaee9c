"""The entrypoint carries the job JSON intact through every shell layer KubeRay uses."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

from tuneforge_operator.entrypoint import build_entrypoint, parse_entrypoint, shell_inert_json

NASTY = {
    "prompt": 'it\'s a "dog" with $HOME and `uname` and \\ backslash, {a,b} *glob* ? [x]',
    "unicode": "chien \u00e9t\u00e9 \u2603",
    "control": "line1\nline2\ttab",
    "path": "s3://bucket/a b/c",
    "empty": "",
}
# Prints the decoded JSON argument, canonically.
_DUMP = "import json, sys; print(json.dumps(json.loads(sys.argv[1]), sort_keys=True))"
# Like `ray job submit -- ARGS`: rejoin with list2cmdline and run with /bin/sh, as Ray does.
_RESUBMIT = (
    "import subprocess, sys; "
    "sys.exit(subprocess.call(subprocess.list2cmdline(sys.argv[1:]), shell=True))"
)


def _command(payload: str) -> list[str]:
    return [sys.executable, "-c", _DUMP, payload]


def test_inert_json_decodes_to_the_same_document_and_has_no_shell_specials() -> None:
    text = shell_inert_json(NASTY)
    assert json.loads(text) == NASTY
    assert "$" not in text and "`" not in text
    assert all(text[i + 1] == "u" for i, ch in enumerate(text) if ch == "\\")


def test_survives_one_shell_like_kuberay_http_mode() -> None:
    entrypoint = shlex.join(_command(shell_inert_json(NASTY)))
    out = subprocess.run(["sh", "-c", entrypoint], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == NASTY


def test_survives_bash_then_ray_job_submit_then_sh_like_kuberay_k8s_job_mode() -> None:
    entrypoint = shlex.join(_command(shell_inert_json(NASTY)))
    script = f"{shlex.quote(sys.executable)} -c {shlex.quote(_RESUBMIT)} {entrypoint}"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == NASTY


def test_plain_shlex_quoting_would_not_survive_k8s_job_mode() -> None:
    """Guards the reason for the inert encoding: a plain JSON dump breaks under list2cmdline + sh."""
    entrypoint = shlex.join(_command(json.dumps(NASTY)))
    script = f"{shlex.quote(sys.executable)} -c {shlex.quote(_RESUBMIT)} {entrypoint}"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert out.returncode != 0 or json.loads(out.stdout) != NASTY


def test_entrypoint_round_trips_and_rejects_foreign_commands() -> None:
    manifest = {"apiVersion": "tuneforge.io/v1alpha1", "spec": NASTY}
    entrypoint = build_entrypoint(manifest)
    assert entrypoint.startswith("python -m tuneforge_trainer run --job ")
    assert parse_entrypoint(entrypoint) == manifest
    assert parse_entrypoint("python train.py") is None
    assert parse_entrypoint("python -m tuneforge_trainer run --job 'not json'") is None
    assert parse_entrypoint("unbalanced 'quote") is None
