"""A worker for end-to-end launches: joins gloo, all-reduces, reports.

Run by ``rdzv-run``/``torchrun``. Each worker prints one line::

    RDZV-WORKER {"rank": 0, "world_size": 4, "sum": 10.0, "restart": 0, ...}

``--steps N --step-seconds S`` keeps it running (all-reducing once per step)
so a test can kill an agent mid-run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import timedelta

import torch
import torch.distributed as dist


def main() -> None:
    """Join the process group, all-reduce ``steps`` times, print the report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--step-seconds", type=float, default=0.0)
    args = parser.parse_args()
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    total = 0.0
    for step in range(args.steps):
        tensor = torch.tensor([float(rank + 1)])
        dist.all_reduce(tensor)
        total = tensor.item()
        if step == 0:
            print(f"RDZV-STEP rank={rank} world_size={world}", flush=True)
        time.sleep(args.step_seconds)
    report = {
        "rank": rank,
        "world_size": world,
        "sum": total,
        "expected_sum": world * (world + 1) / 2,
        "restart": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")),
        "group_rank": int(os.environ.get("GROUP_RANK", "-1")),
        "local_rank": int(os.environ.get("LOCAL_RANK", "-1")),
    }
    print("RDZV-WORKER " + json.dumps(report), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
