#!/usr/bin/env bash
# The project's test command: set up .venv and the test servers, then run the
# whole suite (core, conformance on every adapter, real launches). Extra
# arguments go to pytest. A run that collects no tests fails.
#
# The suite runs on RDZV_TEST_WORKERS pytest-xdist workers (default 4, also
# on 2 cores: most of its time is spent waiting on heartbeats, last calls and
# launched agents, not computing). Each worker starts its own redis-server and
# etcd processes on free loopback ports. Tests are handed out one by one,
# longest first; the root conftest.py keeps the modules whose tests share an
# expensive module fixture on one worker (its scheduler for --dist loadgroup).
# RDZV_TEST_WORKERS=0 runs everything in this process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
workers=${RDZV_TEST_WORKERS:-4}
status=0
.venv/bin/python -m pytest -n "$workers" --dist loadgroup "$@" || status=$?
if [ $status = 5 ]; then
  echo "test: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit $status
