"""Host a TCPStore server in its own process (as redis-server and etcd are).

Run as ``python -m benchmarks.tcpstore_server``: prints the port on stdout,
then serves until its stdin is closed.
"""

from __future__ import annotations

import sys
from datetime import timedelta


def main() -> None:
    """Serve a multi-tenant TCPStore on a free loopback port."""
    import torch.distributed as dist

    store = dist.TCPStore("127.0.0.1", 0, is_master=True, multi_tenant=True, timeout=timedelta(seconds=300))
    print(store.port, flush=True)
    sys.stdin.read()  # returns when the parent closes the pipe (or exits)


if __name__ == "__main__":
    main()
