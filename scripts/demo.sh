#!/usr/bin/env bash
# The main job: an elastic launch of 2 agents x 2 workers on loopback through
# rdzv-run with the embedded default backend (c10d TCPStore, hosted by the
# first agent; no server to install). Each worker joins gloo, all-reduces and
# reports what it did.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
port=$(.venv/bin/python -c "from rdzv_core.testing.ports import free_port; print(free_port())")
worker=$(.venv/bin/python -c "from rdzv_core.testing import allreduce_worker as w; print(w.__file__)")
log=$(mktemp -d)
echo "demo: 2 agents x 2 workers, rdzv-run --rdzv-backend=c10d --rdzv-endpoint=127.0.0.1:$port"
for node in 0 1; do
  is_host=$([ $node = 0 ] && echo true || echo false)
  .venv/bin/rdzv-run --nnodes=1:2 --nproc-per-node=2 --rdzv-backend=c10d \
    --rdzv-endpoint="127.0.0.1:$port" --rdzv-id=demo --local-addr=127.0.0.1 \
    --rdzv-conf="is_host=$is_host,last_call_timeout=2" \
    "$worker" --steps 3 > "$log/agent$node.log" 2>&1 &
  pids[$node]=$!
done
status=0
for node in 0 1; do wait "${pids[$node]}" || status=$?; done
for node in 0 1; do
  echo "--- agent $node"
  grep -E "^RDZV-WORKER" "$log/agent$node.log" | sed 's/^RDZV-WORKER /  worker /' || true
done
if [ $status != 0 ]; then
  echo "demo: an agent failed; logs in $log" >&2
  cat "$log"/agent*.log >&2
  exit $status
fi
echo "demo: every rank all-reduced across 4 workers on 2 agents"
