"""The protocol's rules as the explorer sees them: the NEW ones (today's
code) and the OLD ones (before the fixes of issue 12), kept as a fixture.

:data:`NEW` takes every decision from :mod:`rdzv_core.protocol.decisions`,
the functions the real handler calls; nothing here re-implements them. The
same explorer runs :data:`OLD`, which differs exactly where the code did
before the fixes:

* liveness: the successor is dead when ``now - last_change >= ttl``, where
  ``last_change`` is when the watcher last saw a new beat value; nothing
  resets it after a gap or a failed read (so a store stall longer than the
  TTL made live members dead);
* ``num_nodes_waiting`` counted newcomers (``max(taken - back, 0)``, only
  while the round had room) and dead members, but not the members that
  left the round for the next one (``back``), and ignored ``closed``;
* ``shutdown()`` was a graceful leave: it recorded the node's own death and
  did not close the run (so a spare saw every member of a finished job
  dead and ran the job again);
* the heartbeat's observation did not read ``closed`` (deaths are recorded
  in a closed run too);
* a rank was a ticket's position in the seal, whoever wrote the ticket's
  slot (a store that lost its keys during a join handed a ticket out twice,
  and both holders took its rank), and a waiter never looked at its own
  slot (one whose join the store lost waited for a round that could not
  complete).

Besides the rules, a :class:`Rules` knows how to *canonicalise* its watch
(shift its times, forget a beat value nobody can read again), which the
explorer needs to keep the state space finite. That is bookkeeping, not a
rule: it never changes what the watch will decide.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional

from rdzv_core.protocol import decisions
from rdzv_core.protocol.decisions import Watch


@dataclass(frozen=True)
class OldWatch:
    """The watch of the OLD rules: the beat value last seen and when it changed."""

    value: Optional[bytes]
    changed_at: int

    @classmethod
    def begin(cls, now: int) -> OldWatch:
        """A watch that starts now (the successor gets a whole TTL)."""
        return cls(None, now)

    def failed(self) -> OldWatch:
        """A failed read changed nothing in the old code."""
        return self

    def read(self, value: Optional[bytes], now: int, ttl: int, stall: int) -> tuple[OldWatch, bool]:
        """Fold in a read (``stall`` is ignored: the old code had no such idea)."""
        if value is not None and value != self.value:
            return OldWatch(value, now), False
        return self, now - self.changed_at >= ttl


def _unmarked_rank(tickets: tuple[int, ...], marks: Optional[bytes], ticket: int, mark: bytes) -> Optional[int]:
    """The old rank rule: a ticket's position in the seal, whoever wrote its slot."""
    return tickets.index(ticket) if ticket in tickets else None


def _old_stall_limit(ttl: float, interval: float, tick: float) -> float:
    return 0.0  # unused by OldWatch.read


def _old_nodes_waiting(world_size: int, max_nodes: int, taken: int, back: int, gone: int, closed: bool) -> int:
    """The old ``num_nodes_waiting``: newcomers while there is room, plus dead members."""
    newcomers = max(taken - back, 0) if world_size < max_nodes else 0
    return newcomers + gone


@dataclass(frozen=True)
class Rules:
    """One rule set, as the explorer calls it.

    ``watch_begin(now)`` makes a watch; a watch has ``read(value, now, ttl,
    stall) -> (watch, dead)`` and ``failed()``. ``closed_stops_deaths``: a
    closed run records no deaths (the observation reads ``closed``).
    ``shutdown_closes``: ``shutdown()`` closes the run and stops beating
    (NEW); otherwise it is a graceful leave that records the node's own
    death (OLD).
    """

    name: str
    watch_begin: Callable[[int], Any]
    stall_limit: Callable[[float, float, float], float]
    nodes_waiting: Callable[[int, int, int, int, int, bool], int]
    closed_stops_deaths: bool
    shutdown_closes: bool
    #: Members write the round hint back when it is behind their round (NEW).
    announces_hint: bool = False
    #: A waiter's poll reads its own slot and joins again when the slot is
    #: gone or another node's (NEW).
    checks_own_slot: bool = False
    sealable: Callable[..., bool] = decisions.sealable
    admitted: Callable[..., Optional[tuple[int, ...]]] = decisions.admitted
    is_spare: Callable[..., bool] = decisions.is_spare
    rank_in_seal: Callable[..., Optional[int]] = decisions.rank_in_seal

    # -- canonicalisation (not rules) ------------------------------------------

    @staticmethod
    def forget(watch: Any) -> Any:
        """The watch with its beat value forgotten: used when no later read can
        return that value again (overwritten, expired, wiped), where a
        forgotten value and the old one compare the same against every
        future read."""
        return watch if watch.value is None else dataclasses.replace(watch, value=None)

    @staticmethod
    def shift(watch: Any, dt: int, ttl: int, stall: int) -> Any:
        """The watch with its times moved ``dt`` ticks into the past (the
        explorer keeps times relative to now), clamped where older values no
        longer change any decision: ``now - t >= ttl`` holds for every
        ``t <= -ttl``, and ``now - read_at <= stall`` fails for every
        ``read_at < -stall``."""
        def old(t: int, floor: int) -> int:
            return max(t - dt, floor)

        if isinstance(watch, OldWatch):
            return OldWatch(watch.value, old(watch.changed_at, -ttl))
        since = None if watch.reachable_since is None else old(watch.reachable_since, -ttl)
        return Watch(watch.value, old(watch.changed_at, -ttl), since, old(watch.read_at, -stall - 1))


#: Today's rules: every decision from :mod:`rdzv_core.protocol.decisions`.
NEW = Rules(
    name="new",
    watch_begin=Watch.begin,
    stall_limit=decisions.stall_limit,
    nodes_waiting=decisions.nodes_waiting,
    closed_stops_deaths=True,
    shutdown_closes=True,
    announces_hint=True,
    checks_own_slot=True,
)

#: The rules before issue 12's fixes (the fixture the explorer must catch).
OLD = Rules(
    name="old",
    watch_begin=OldWatch.begin,
    stall_limit=_old_stall_limit,
    nodes_waiting=_old_nodes_waiting,
    closed_stops_deaths=False,
    shutdown_closes=False,
    rank_in_seal=_unmarked_rank,
)
