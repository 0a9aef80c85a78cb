"""Connected TCPStore clients, reused from one run to the next.

On this kind of machine a TCPStore client connect on loopback now and then
stalls for 5 s (a few per cent of connects made one after another, most of
a parallel burst; torch 2.13, libuv and legacy servers alike), so setting
up N separate clients costs about N/6 seconds whatever the parallelism —
minutes at N=1024, for every backend and every N. The benchmark only times
the rendezvous, never the connects, so the threads mode hands every agent a
client of its own from this pool instead of connecting afresh: within one
run no two agents share a client, exactly as separate agents would not.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any


class TcpClientPool:
    """Idle TCPStore clients of one server, created on demand."""

    def __init__(self, endpoint: str, timeout: float = 60.0, parallel: int = 64) -> None:
        host, port = endpoint.rsplit(":", 1)
        self._host, self._port = host, int(port)
        self._timeout = timedelta(seconds=timeout)
        self._parallel = parallel
        self._free: list[Any] = []
        self._lock = threading.Lock()
        self._leasing = threading.Lock()  # one lease at a time: no two leases count the same idle clients

    def _connect(self, _: int = 0) -> Any:
        import torch.distributed as dist

        return dist.TCPStore(self._host, self._port, is_master=False, multi_tenant=True, timeout=self._timeout)

    def lease(self, count: int) -> list[Any]:
        """``count`` clients nobody else holds (connecting more as needed)."""
        with self._leasing:
            with self._lock:
                taken, self._free = self._free[:count], self._free[count:]
            missing = count - len(taken)
            if missing > 0:
                with ThreadPoolExecutor(min(self._parallel, missing)) as pool:
                    taken += list(pool.map(self._connect, range(missing)))
        return taken

    def give_back(self, clients: list[Any]) -> None:
        """Return clients for the next run."""
        with self._lock:
            self._free.extend(clients)

    @property
    def size(self) -> int:
        """Idle clients held."""
        return len(self._free)
