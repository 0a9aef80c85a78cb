"""Heartbeats of round members and ring monitoring of their liveness.

Every member of a completed round writes ``alive/<rank>`` every
``interval`` seconds with a TTL, and watches its successor in the ring
(``rank + 1``, skipping members already known dead). A successor is dead when
its key is missing, or when its beat counter has not moved for a whole TTL as
measured by the watcher's own monotonic clock -- which is how liveness works
on stores without native TTLs (c10d), without comparing clocks across hosts.
A death is recorded exactly once (a marker created by CAS, then a counter
``add``), so survivors count dead members with one small read.

The watcher's read also fetches what ``num_nodes_waiting`` needs (tickets
and returners of the next round, dead members of this one): one small read
per node per tick is the whole idle load besides the beats.

Beats and watches run on the process's shared scheduler
(:mod:`rdzv_core.protocol.scheduler`), not on a thread per handler.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

from rdzv_core.guarded import GuardedStore
from rdzv_core.protocol import keys
from rdzv_core.protocol.scheduler import Scheduler, TaskHandle, shared_scheduler

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


@dataclass(frozen=True)
class Observation:
    """What the heartbeat thread last saw of the next round (for ``num_nodes_waiting``)."""

    at: float  # time.monotonic() of the read
    taken: int  # tickets taken in the next round
    back: int  # members of this round already in the next one
    gone: int  # members of this round known dead


class Heartbeat:
    """Beats for one membership and watches the successor, as a task of the
    process's shared :class:`~rdzv_core.protocol.scheduler.Scheduler`."""

    def __init__(
        self,
        store: GuardedStore,
        member: Membership,
        interval: float,
        ttl: float,
        tick: float = 1.0,
        scheduler: Scheduler | None = None,
    ) -> None:
        self._store = store
        self.member = member
        self._interval = interval
        self._ttl = ttl
        self._tick_seconds = min(tick, interval)
        self._scheduler = scheduler
        self._task: TaskHandle | None = None
        self._seq = 0
        self._next_beat = 0.0  # the first beat is due at the first tick
        self._ticked = False  # watching starts one tick after the first beat
        self._watched = (member.rank + 1) % member.world_size
        self._last_value: bytes | None = None
        self._last_change = time.monotonic()
        #: The latest :class:`Observation` (``None`` before the first tick).
        self.observed: Observation | None = None

    def start(self) -> Heartbeat:
        """Beat every ``interval`` and watch every ``tick`` seconds, in the
        background; returns without waiting for the store.

        The first beat comes after a random delay of ½ to 1 times
        ``min(interval, ttl / 2)``: the members of a round all start their
        heartbeats the moment it completes, and this spreads their beats
        over time instead of sending N writes at once, again every interval.
        A successor's watcher allows a whole TTL for the first beat, at least
        twice the longest delay.
        """
        scheduler = self._scheduler or shared_scheduler()
        first = random.uniform(0.5, 1.0) * min(self._interval, self._ttl / 2)
        self._task = scheduler.schedule(self._tick, first)
        return self

    def stop(self) -> None:
        """Stop beating (the key then lapses after its TTL); returns once no
        beat or watch of this heartbeat is in progress."""
        if self._task is not None:
            self._task.cancel()

    def _beat(self) -> None:
        self._seq += 1
        key = keys.alive(self.member.round_no, self.member.rank)
        self._store.write(key, str(self._seq).encode(), ttl=self._ttl)

    def _tick(self) -> float:
        """One scheduled run: beat when due, watch from the second tick on."""
        try:
            now = time.monotonic()
            if now >= self._next_beat:
                self._beat()
                self._next_beat = time.monotonic() + self._interval
            if self._ticked:
                self._observe()
            self._ticked = True
        except Exception as exc:  # noqa: BLE001 - a heartbeat must outlive store hiccups
            log.warning("rdzv heartbeat of round %s: %s", self.member.round_no, exc)
        return self._tick_seconds

    def _observe(self) -> None:
        """One read: the watched successor's beat and the next round's counters."""
        member = self.member
        wanted = keys.waiting_counters(member.round_no)
        watching = member.world_size >= 2 and self._watched != member.rank
        if watching:
            wanted.append(keys.alive(member.round_no, self._watched))
        values = self._store.read_many(wanted)
        now = time.monotonic()
        self.observed = Observation(now, *(keys.counter(v) for v in values[:3]))
        if watching:
            self._judge(values[3], now)

    def _judge(self, value: bytes | None, now: float) -> None:
        """Decide whether the watched successor is dead, given its beat now."""
        member = self.member
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
