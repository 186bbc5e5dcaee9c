#!/usr/bin/env bash
# `make test`'s pytest run, with mypy checking the typed packages alongside it.
#
# Cold (a fresh clone has no .mypy_cache), mypy spends about 2.5 CPU-minutes following the
# typed libraries (transformers, torch, kubernetes, ray, mlflow). Run first, it held up every
# test; the suite leaves one of the two cores idle for much of its run (tests waiting on
# Ray, the apiserver, subprocesses), so mypy runs beside pytest at a lower priority (nice 10)
# and its report is printed when both are done. Either failing fails the command.
#
# Usage: scripts/test-suite.sh PYTHON [PYTEST ARGS...]   (run from the repository root)
set -uo pipefail
python="$1"
shift
venv_bin="$(dirname "$python")"
report="$(mktemp -t tuneforge-mypy.XXXXXX)"
trap 'rm -f "$report"' EXIT

nice -n 10 "$venv_bin/mypy" sdk/tuneforge operator/tuneforge_operator >"$report" 2>&1 &
mypy_pid=$!

scripts/netns-run "$python" -m pytest "$@"
pytest_status=$?

wait "$mypy_pid"
mypy_status=$?
echo "mypy (ran beside pytest):"
cat "$report"
if [ "$mypy_status" -ne 0 ]; then
  echo "mypy failed (exit $mypy_status)"
fi
if [ "$pytest_status" -ne 0 ]; then
  exit "$pytest_status"
fi
exit "$mypy_status"
