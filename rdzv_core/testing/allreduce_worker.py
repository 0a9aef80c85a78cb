"""A worker for end-to-end launches: joins gloo, all-reduces, reports.

Run by ``rdzv-run``/``torchrun``. Each worker prints one line::

    RDZV-WORKER {"rank": 0, "world_size": 4, "sum": 10.0, "restart": 0, ...}

(the report also names the ``MASTER_ADDR``/``MASTER_PORT`` the worker
bootstrapped from and ``TORCHELASTIC_USE_AGENT_STORE``).

``--steps N --step-seconds S`` keeps it running (all-reducing once per step)
so a test can kill an agent mid-run, and prints once, at its first step::

    RDZV-STEP rank=0 world_size=4 restart=0

With ``--stop-file PATH`` the job ends early, as soon as ``PATH`` exists: a
test creates it once it has seen the round it waits for, so the job lasts as
long as the scenario needs, not a fixed time guessed for a loaded machine
(``--steps`` is then only an upper bound). Whether to stop is all-reduced
with the step's value, so every rank leaves the loop at the same step.

Fault options (all act on the first run only, ``TORCHELASTIC_RESTART_COUNT``
0, so a restarted worker runs normally):

* ``--fail-on-group-rank G --fail-at-step K``: local rank 0 of the node with
  group rank ``G`` prints ``RDZV-FAIL rank=.. group_rank=G step=K`` and exits
  with status 1 at step ``K``, right after that step's all-reduce.
* ``--compute-seconds S --compute-at-step K``: every other worker sleeps ``S``
  seconds at step ``K`` (a long compute step between two collectives) and
  prints ``RDZV-COMPUTE rank=.. seconds=S`` when it starts. The sleep ends
  early once the stop file exists, so a test can end the job at once.

Torch restarts workers without counting a restart when it sees a node
waiting, so a worker restarted that way runs its "first run" again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta

import torch
import torch.distributed as dist


def compute(seconds: float, stop_file: str | None) -> None:
    """Sleep ``seconds`` (a long compute step), or until ``stop_file`` exists."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stop_file is not None and os.path.exists(stop_file):
            return
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


def main() -> None:
    """Join the process group, all-reduce ``steps`` times, print the report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--step-seconds", type=float, default=0.0)
    parser.add_argument("--stop-file", default=None)
    parser.add_argument("--fail-on-group-rank", type=int, default=None)
    parser.add_argument("--fail-at-step", type=int, default=None)
    parser.add_argument("--compute-seconds", type=float, default=0.0)
    parser.add_argument("--compute-at-step", type=int, default=None)
    args = parser.parse_args()
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    group_rank = int(os.environ.get("GROUP_RANK", "-1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "-1"))
    fails = restart == 0 and args.fail_on_group_rank == group_rank and local_rank == 0
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    total = 0.0
    for step in range(args.steps):
        stop = 1.0 if args.stop_file is not None and os.path.exists(args.stop_file) else 0.0
        tensor = torch.tensor([float(rank + 1), stop])
        dist.all_reduce(tensor)
        total = tensor[0].item()
        if step == 0:
            print(f"RDZV-STEP rank={rank} world_size={world} restart={restart}", flush=True)
        if tensor[1].item() > 0:
            break
        if fails and step == args.fail_at_step:
            print(f"RDZV-FAIL rank={rank} group_rank={group_rank} step={step}", flush=True)
            sys.stderr.flush()
            os._exit(1)  # noqa: SLF001 - a crash: no clean-up of the process group
        if restart == 0 and step == args.compute_at_step and not fails:
            print(f"RDZV-COMPUTE rank={rank} seconds={args.compute_seconds:g}", flush=True)
            compute(args.compute_seconds, args.stop_file)
        time.sleep(args.step_seconds)
    report = {
        "rank": rank,
        "world_size": world,
        "sum": total,
        "expected_sum": world * (world + 1) / 2,
        "restart": restart,
        "group_rank": group_rank,
        "local_rank": local_rank,
        # The store the workers bootstrapped from, and whether it is the agent's shared one.
        "master_addr": os.environ.get("MASTER_ADDR", ""),
        "master_port": int(os.environ.get("MASTER_PORT", "-1")),
        "use_agent_store": os.environ.get("TORCHELASTIC_USE_AGENT_STORE", ""),
    }
    print("RDZV-WORKER " + json.dumps(report), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
