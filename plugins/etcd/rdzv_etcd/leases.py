"""The leases an etcd adapter attaches its keys to.

etcd expires keys through leases: a key attached to a lease is deleted when
the lease runs out. Three kinds are used:

* The **run lease** (one per adapter instance, i.e. per agent): every key
  written without a TTL is attached to it. It is granted on the first write
  with a TTL of ``1.25 * ttl`` and renewed on a write once it is older than
  ``ttl / 4``. A key therefore lives at least ``ttl`` and at most
  ``1.25 * ttl`` seconds after the last write of the agent that wrote it;
  no background thread is needed (torch's handler writes its heartbeat every
  few seconds, which keeps the lease of every live agent fresh).
* A **lease of its own per key written with ``write(..., ttl=t)``**, of
  ``ceil(t)`` seconds: the first such write grants it, each rewrite of the
  same key with the same TTL renews it (a keep-alive resets it to its full
  TTL; cheaper for the cluster than a grant, which is a Raft proposal, and no
  lease piles up). That key expires ``t`` seconds (rounded up to whole
  seconds, the lease granularity) after its last write, whatever else is
  written; no other key shares its lease.
* A **receipt lease** shared by ``add`` receipts, re-granted before its
  remaining life drops below what one ``add`` may take.

Leases are never revoked on close: revoking would delete the run's keys
while other agents still use them.
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from rdzv_etcd.client import EtcdClient

#: The run lease is granted this much longer than ``ttl`` ...
_RUN_SLACK = 1.25
#: ... and renewed on a write once this fraction of ``ttl`` has passed.
_RUN_RENEW_AFTER = 0.25


class LeaseKeeper:
    """Grants and renews the leases of one adapter instance (thread-safe)."""

    def __init__(self, client: EtcdClient, ttl: float) -> None:
        self._client = client
        self._ttl = ttl
        self._lock = threading.Lock()
        self._run: int | None = None
        self._run_renewed = 0.0
        self._receipt: int | None = None
        self._receipt_until = 0.0
        self._per_key: dict[bytes, tuple[int, int, float]] = {}  # key -> (lease, ttl, renewed at)

    def run_lease(self, budget: float) -> int:
        """The run lease, granted or renewed as needed (see module docstring)."""
        with self._lock:
            now = time.monotonic()
            if self._run is not None and now - self._run_renewed < self._ttl * _RUN_RENEW_AFTER:
                return self._run
            if self._run is not None and self._client.lease_keepalive(self._run, budget=budget) > 0:
                self._run_renewed = now
                return self._run
            self._run = self._client.lease_grant(math.ceil(self._ttl * _RUN_SLACK), budget=budget)
            self._run_renewed = now
            return self._run

    def key_lease(self, key: bytes, ttl: float, budget: float) -> int:
        """The lease of ``key`` written with ``ttl``: renewed if it is still alive, else new."""
        seconds = max(1, math.ceil(ttl))
        now = time.monotonic()
        with self._lock:
            entry = self._per_key.get(key)
        if entry is not None and entry[1] == seconds and now - entry[2] < seconds:
            if self._client.lease_keepalive(entry[0], budget=budget) > 0:
                with self._lock:
                    self._per_key[key] = (entry[0], seconds, now)
                return entry[0]
        lease = self._client.lease_grant(seconds, budget=budget)
        with self._lock:
            if len(self._per_key) >= 4096:  # forget leases that have surely expired
                self._per_key = {k: e for k, e in self._per_key.items() if now - e[2] < e[1]}
            self._per_key[key] = (lease, seconds, now)
        return lease

    def receipt_lease(self, min_life: float, budget: float) -> int:
        """A lease that will live at least ``min_life`` more seconds."""
        with self._lock:
            now = time.monotonic()
            if self._receipt is None or self._receipt_until - now < min_life:
                life = math.ceil(2 * min_life + 30)
                self._receipt = self._client.lease_grant(life, budget=budget)
                self._receipt_until = now + life
            return self._receipt

    def forget(self, lease: int) -> None:
        """Stop using ``lease`` (the server said it no longer exists)."""
        with self._lock:
            if self._run == lease:
                self._run = None
            if self._receipt == lease:
                self._receipt = None
            self._per_key = {k: e for k, e in self._per_key.items() if e[0] != lease}

    def reset(self) -> None:
        """Forget every lease (in a forked child: it grants its own)."""
        self._lock = threading.Lock()
        self._run = self._receipt = None
        self._per_key = {}
