"""Heartbeats of round members and ring monitoring of their liveness.

Every member of a completed round writes ``alive/<rank>`` every
``interval`` seconds with a TTL, and watches its successor in the ring
(``rank + 1``, skipping members already known dead). A successor is dead when
its key is missing, or when its beat counter has not moved for a whole TTL as
measured by the watcher's own monotonic clock -- which is how liveness works
on stores without native TTLs (c10d), without comparing clocks across hosts.
A death is recorded exactly once (a marker created by CAS, then a counter
``add``), so survivors count dead members with one small read.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from rdzv_core.guarded import GuardedStore
from rdzv_core.protocol import keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Membership:
    """A node's place in a completed round."""

    round_no: int
    rank: int
    world_size: int
    ticket: int


def record_death(store: GuardedStore, round_no: int, rank: int) -> bool:
    """Mark member ``rank`` of ``round_no`` dead; count it once. Returns
    whether this call was the one that recorded it."""
    marker = keys.dead_marker(round_no, rank)
    result = store.cas(marker, None, b"1", landed=lambda cur: cur is not None)
    if not result.applied:
        return False
    store.add(keys.dead(round_no), 1)
    return True


class Heartbeat:
    """Background thread: beat for one membership and watch the successor."""

    def __init__(self, store: GuardedStore, member: Membership, interval: float, ttl: float, tick: float = 1.0) -> None:
        self._store = store
        self.member = member
        self._interval = interval
        self._ttl = ttl
        self._tick = min(tick, interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rdzv-heartbeat-r{member.round_no}", daemon=True)
        self._seq = 0
        self._watched = (member.rank + 1) % member.world_size
        self._last_value: bytes | None = None
        self._last_change = time.monotonic()

    def start(self) -> Heartbeat:
        """Write the first beat synchronously, then keep beating in the background."""
        self._beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating (the key then lapses after its TTL)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def _beat(self) -> None:
        self._seq += 1
        key = keys.alive(self.member.round_no, self.member.rank)
        self._store.write(key, str(self._seq).encode(), ttl=self._ttl)

    def _run(self) -> None:
        next_beat = time.monotonic() + self._interval
        while not self._stop.wait(self._tick):
            try:
                if time.monotonic() >= next_beat:
                    self._beat()
                    next_beat = time.monotonic() + self._interval
                self._watch()
            except Exception as exc:  # noqa: BLE001 - a heartbeat must outlive store hiccups
                log.warning("rdzv heartbeat of round %s: %s", self.member.round_no, exc)

    def _watch(self) -> None:
        member = self.member
        if member.world_size < 2 or self._watched == member.rank:
            return
        found = self._store.read(keys.alive(member.round_no, self._watched))
        value = None if found is None else found.value
        now = time.monotonic()
        if value is not None and value != self._last_value:
            self._last_value, self._last_change = value, now
            return
        if now - self._last_change < self._ttl:
            return
        # Missing, or frozen for a whole TTL: the successor is dead.
        if record_death(self._store, member.round_no, self._watched):
            log.warning("rdzv: member %s of round %s stopped beating", self._watched, member.round_no)
        self._watched = (self._watched + 1) % member.world_size
        self._last_value, self._last_change = None, now
