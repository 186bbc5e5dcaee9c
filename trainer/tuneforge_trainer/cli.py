"""`python -m tuneforge_trainer run --job FILE|-|JSON`: validate a FineTuneJob and run it.

The job is JSON or YAML: a file, `-` for stdin, or the JSON object itself (the operator's
RayJob entrypoint passes it inline). Settings (S3, MLflow, Ray address) come
from the environment. Exit codes: 0 trained and registered; 2 invalid job or input (one line
on stderr naming the field or file); 3 a service is unreachable; 1 training failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_UNAVAILABLE = 3
PROG = "tuneforge-trainer"


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first.get("loc", ()))
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"invalid FineTuneJob: {location}: {first.get('msg')}{more}"


def _fail(code: int, message: str) -> int:
    sys.stderr.write(f"{PROG}: error: {' '.join(message.split())}\n")
    return code


def run_command(source: str, check_only: bool = False) -> int:
    """Load, validate and run one job; returns the exit code."""
    from tuneforge.api import load_job
    from tuneforge.errors import ConfigurationError, StorageError, TuneForgeError
    from tuneforge_trainer.errors import ServiceUnavailable, TrainingFailed

    try:
        if source == "-":
            text = sys.stdin.read()
        elif source.lstrip().startswith("{"):
            text = source
        else:
            with open(source, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as error:
        return _fail(EXIT_INVALID, f"cannot read --job {source}: {error.strerror}")
    try:
        job = load_job(text)
    except ValidationError as error:
        return _fail(EXIT_INVALID, _one_line(error))
    except ValueError as error:  # YAML/JSON syntax, several documents
        return _fail(EXIT_INVALID, f"invalid FineTuneJob in {source}: {error}")
    try:
        if check_only:
            from tuneforge_trainer.check import check_job

            check_job(job)
            return EXIT_OK
        from tuneforge_trainer.runner import run_job

        run_job(job)
    except (ServiceUnavailable, StorageError) as error:
        return _fail(EXIT_UNAVAILABLE, str(error))
    except (ConfigurationError, ValueError) as error:
        return _fail(EXIT_INVALID, str(error))
    except (TrainingFailed, TuneForgeError) as error:
        return _fail(EXIT_FAILED, str(error))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m tuneforge_trainer`."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="validate and run a FineTuneJob")
    run.add_argument(
        "--job",
        required=True,
        help="FineTuneJob file (JSON or YAML), - for stdin, or the JSON itself",
    )
    run.add_argument(
        "--check", action="store_true", help="only run the pre-flight checks, train nothing"
    )
    args = parser.parse_args(argv)
    return run_command(args.job, check_only=args.check)
