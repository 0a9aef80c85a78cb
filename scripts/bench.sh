#!/usr/bin/env bash
# The benchmarks: set up .venv with the test servers and matplotlib, then run
# every benchmark side by side with torch and regenerate docs/benchmarks.md.
# Arguments go to benchmarks/run_all.py (--quick for a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --bench
exec .venv/bin/python -m benchmarks.run_all "$@"
