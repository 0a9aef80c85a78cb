#!/usr/bin/env bash
# The project's test command: set up .venv and the test servers, then run the
# whole suite (core, conformance on every adapter, real launches). Extra
# arguments go to pytest. A run that collects no tests fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ $status = 5 ]; then
  echo "test: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit $status
