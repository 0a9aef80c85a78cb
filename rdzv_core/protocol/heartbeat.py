"""Heartbeats of round members and ring monitoring of their liveness.

Every member of a completed round writes ``alive/<rank>`` every
``interval`` seconds with a TTL, and watches its successor in the ring
(``rank + 1``, skipping members already known dead). A successor is dead when
no new beat value appeared for a whole TTL, as measured by the watcher's own
monotonic clock over a stretch in which the watcher could reach the store
(:class:`~rdzv_core.protocol.decisions.Watch`): a missing key is just "no new
beat", so liveness works on stores without native TTLs (c10d) and never
compares clocks across hosts, and a frozen or restarted store never makes
live members look dead. A death is recorded exactly once (a marker created
by CAS, then a counter ``add``), so survivors count dead members with one
small read.

The watcher's read also fetches what ``num_nodes_waiting`` needs (whether
the run is closed, tickets and returners of the next round, dead members of
this one) and the round hint, which it writes back when the store lost it: one small read per node per tick is the whole idle load besides
the beats. A store that does not answer is logged once per outage, not once
per tick.

Beats and watches run on the process's shared scheduler
(:mod:`rdzv_core.protocol.scheduler`), not on a thread per handler.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Callable

from rdzv_core.guarded import GuardedStore
from rdzv_core.protocol import keys
from rdzv_core.protocol import decisions
from rdzv_core.protocol.decisions import Watch, stall_limit
from rdzv_core.protocol.events import RendezvousEvents
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
    store.increment(keys.dead(round_no))
    return True


@dataclass(frozen=True)
class Observation:
    """What the heartbeat last saw of the run and the next round (for ``num_nodes_waiting``)."""

    at: float  # time.monotonic() of the read
    closed: bool  # the run is closed
    taken: int  # tickets taken in the next round
    back: int  # members of this round already in the next one
    gone: int  # members of this round known dead


def observed_keys(round_no: int) -> list[str]:
    """What one observation of a member of ``round_no`` reads (its watched
    successor's beat is appended): closed, the waiting counters, the round hint."""
    return [keys.CLOSED, *keys.waiting_counters(round_no), keys.ROUND]


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
        events: RendezvousEvents | None = None,
    ) -> None:
        self._store = store
        self._events = events
        self.member = member
        self._interval = interval
        self._ttl = ttl
        self._tick_seconds = min(tick, interval)
        self._stall = stall_limit(ttl, interval, self._tick_seconds)
        self._scheduler = scheduler
        self._task: TaskHandle | None = None
        self._seq = 0
        self._next_beat = 0.0  # the first beat is due at the first tick
        self._ticked = False  # watching starts one tick after the first beat
        self._watched = (member.rank + 1) % member.world_size
        self._watch = Watch.begin(time.monotonic())
        self._outage_since: float | None = None  # first failure of the current outage
        self._asked = False  # an early observation was requested (observe_soon)
        #: The latest :class:`Observation` (``None`` before the first one).
        self.observed: Observation | None = None
        #: When the regular observations begin (monotonic; the second tick):
        #: an observation older than this is not a sign of an outage.
        self.regular_from = float("inf")

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
        first = random.uniform(0.5, 1.0) * min(self._interval, self._ttl / 2)
        self.regular_from = time.monotonic() + first + self._tick_seconds
        self._task = self._scheduler_in_use().schedule(self._tick, first)
        return self

    def observe_soon(self) -> None:
        """Read the run's counters once, soon, in the background (for a
        ``num_nodes_waiting`` asked before the first tick observed them);
        never blocks the caller. Asked for once per heartbeat."""
        if self._asked or self.observed is not None:
            return
        self._asked = True
        self._scheduler_in_use().schedule(self._observe_counters, 0.0)

    def stop(self) -> None:
        """Stop beating (the key then lapses after its TTL); returns once no
        beat or watch of this heartbeat is in progress."""
        if self._task is not None:
            self._task.cancel()

    def _scheduler_in_use(self) -> Scheduler:
        return self._scheduler or shared_scheduler()

    def _beat(self) -> None:
        self._seq += 1
        key = keys.alive(self.member.round_no, self.member.rank)
        self._store.write(key, keys.beat_value(self._seq, time.time()), ttl=self._ttl)

    def _tick(self) -> float:
        """One scheduled run: beat when due, watch from the second tick on.
        A failure of either is logged once per outage; a failed read breaks
        the watch's stretch (see :class:`~rdzv_core.protocol.decisions.Watch`)."""
        answered = True
        if time.monotonic() >= self._next_beat:
            answered = self._attempt(self._beat)
            if answered:
                self._next_beat = time.monotonic() + self._interval
        if self._ticked and not self._attempt(self._observe):
            self._watch = self._watch.failed()
            answered = False
        self._ticked = True
        if answered:
            self._reached()
        return self._tick_seconds

    def _attempt(self, step: Callable[[], None]) -> bool:
        """Run ``step``; whether the store answered (a heartbeat outlives store hiccups)."""
        try:
            step()
            return True
        except Exception as exc:  # noqa: BLE001 - logged once per outage, retried next tick
            self._unreached(exc)
            return False

    def _observe_counters(self) -> None:
        """The one-off read of :meth:`observe_soon` (errors: the ticks go on)."""
        try:
            values = self._store.read_many(observed_keys(self.member.round_no))
        except Exception:  # noqa: BLE001 - the regular ticks report outages
            return
        if self.observed is None:
            self.observed = self._observation(values, time.monotonic())

    @staticmethod
    def _observation(values: list[bytes | None], now: float) -> Observation:
        closed, taken, back, gone = values[:4]
        return Observation(now, closed is not None, keys.counter(taken), keys.counter(back), keys.counter(gone))

    def _observe(self) -> None:
        """One read: the run's counters and the watched successor's beat."""
        member = self.member
        wanted = observed_keys(member.round_no)
        watching = member.world_size >= 2 and self._watched != member.rank
        if watching:
            wanted.append(keys.alive(member.round_no, self._watched))
        values = self._store.read_many(wanted)
        now = time.monotonic()
        self.observed = seen = self._observation(values, now)
        hint = decisions.hint_to_announce(member.round_no, keys.counter(values[4]))
        if hint is not None:  # the store lost its keys: newcomers must find our next round
            self._store.write(keys.ROUND, str(hint).encode())
        if watching and not seen.closed:  # a closed run is ending: nobody restarts for a death
            self._judge(values[5], now)

    def _judge(self, value: bytes | None, now: float) -> None:
        """Fold the watched successor's beat into the watch; record it dead
        when the watch says so and move on to the next member."""
        member = self.member
        self._watch, dead = self._watch.read(value, now, self._ttl, self._stall)
        metrics = self._store.metrics
        if metrics is not None:
            metrics.heartbeat_lag.set(now - self._watch.changed_at)
        if not dead:
            return
        if record_death(self._store, member.round_no, self._watched):
            if metrics is not None:
                metrics.deaths.inc()
            log.warning("rdzv: member %s of round %s stopped beating", self._watched, member.round_no)
            if self._events is not None:
                self._events.dead_member(member.round_no, self._watched)
        self._watched = (self._watched + 1) % member.world_size
        self._watch = Watch.begin(now)

    def _unreached(self, exc: Exception) -> None:
        """Log the first failure of an outage (not one line per tick)."""
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            if self._events is not None:
                self._events.beat_failed(exc)
            log.warning("rdzv heartbeat of round %s: the store does not answer (%s); liveness judgements "
                        "are suspended until it does", self.member.round_no, exc)

    def _reached(self) -> None:
        """Log the end of an outage."""
        if self._outage_since is not None:
            log.warning("rdzv heartbeat of round %s: the store answers again after %.1f s",
                        self.member.round_no, time.monotonic() - self._outage_since)
            self._outage_since = None
