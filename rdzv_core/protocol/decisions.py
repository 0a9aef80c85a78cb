"""The scalable protocol's decisions, as pure functions of what a node observed.

Nothing here reads a clock or a store: callers pass in what they saw and
when (their own ``time.monotonic()``), and act on the answer. That keeps
every rule testable without timing, and lets the I/O loops in
``rounds.py``, ``heartbeat.py`` and ``handler.py`` stay thin.

Liveness (:class:`Watch`): a watcher reads its successor's beat every tick.
The successor is dead when, over a stretch in which the watcher itself could
reach the store, no new beat value appeared for a whole TTL. A stretch is
broken by a failed read or by a gap between two successful reads longer than
:func:`stall_limit` (the store, or the watcher, stalled): after a break the
successor gets a whole TTL again, counted from the first read that got
through. A frozen or restarted store therefore never makes live members look
dead, however long it was away; a member that really died is recorded one
TTL after the store came back.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Bytes of a slot's fingerprint in a seal (see :func:`rank_in_seal`).
MARK_SIZE = 4


def stall_limit(ttl: float, interval: float, tick: float) -> float:
    """The longest gap between two successful reads of a watcher that still
    counts as one unbroken stretch.

    A member's key can only lapse, or its beat stand still for a TTL, if no
    write of it got through for about ``ttl - interval``; a watcher that saw
    the store the whole time reads it every ``tick``. Any gap that long (less
    a tick of slack) therefore breaks the stretch; and the limit is never
    below two ticks, so ordinary scheduling jitter breaks nothing.
    """
    return max(2 * tick, ttl - interval - tick)


@dataclass(frozen=True)
class Watch:
    """What a watcher knows of its successor's beats (times on its own clock)."""

    value: bytes | None  # the beat value last seen (None: none seen yet)
    changed_at: float  # when a new value was last seen
    reachable_since: float | None  # start of the current unbroken stretch (None: broken)
    read_at: float  # the last successful read

    @classmethod
    def begin(cls, now: float) -> Watch:
        """A watch that starts now (the successor gets a whole TTL)."""
        return cls(None, now, now, now)

    def failed(self) -> Watch:
        """A read failed: the stretch is broken."""
        return Watch(self.value, self.changed_at, None, self.read_at)

    def read(self, value: bytes | None, now: float, ttl: float, stall: float) -> tuple[Watch, bool]:
        """Fold in one successful read of the successor's beat (``None``: key
        missing); return the new watch and whether the successor is dead."""
        unbroken = self.reachable_since is not None and now - self.read_at <= stall
        since = self.reachable_since if unbroken else now
        assert since is not None
        if value is not None and value != self.value:
            return Watch(value, now, since, now), False
        after = Watch(self.value, self.changed_at, since, now)
        return after, now - max(self.changed_at, since) >= ttl


def nodes_waiting(world_size: int, max_nodes: int, taken: int, back: int, gone: int, closed: bool) -> int:
    """What a member's ``num_nodes_waiting()`` answers: how many nodes its
    running round must restart for.

    ``taken`` tickets of the next round, ``back`` of them held by members of
    this round that left it for the next one (their own workers failed and
    their agent re-rendezvoused), and ``gone`` members of this round recorded
    dead. A member that left counts as waiting for the others, as torch's
    wait list does; newcomers count only while the round has room (a full
    round's newcomers are spares). Once the run is closed nothing waits: the
    job is ending and a restart could only fail.
    """
    if closed:
        return 0
    newcomers = max(taken - back, 0) if world_size < max_nodes else 0
    return back + newcomers + gone


def seal_gate(previous_world: int | None, back: int, gone: int) -> tuple[bool, bool]:
    """(may the round seal on last call, may it seal now), given the world size
    of the round before (``None``: round 0, or the round before never
    completed), members back from it and members of it recorded dead.

    After a completed round, members still running it must not be overtaken
    by a newcomer: last call counts only once the previous round broke (a
    member returned or died), and the round seals at once when every live
    previous member is back.
    """
    if previous_world is None:
        return True, False
    return back + gone > 0, back + gone >= previous_world


def sealable(taken: int, back: int, gone: int, previous_world: int | None, min_nodes: int, max_nodes: int,
             last_call_over: bool) -> bool:
    """Whether a waiter that sees ``taken`` tickets (``back`` of them
    returners, ``gone`` previous members dead) may seal the round now:
    every live previous member is back, or last call is allowed and either
    over or the round is full; never below ``min_nodes`` tickets."""
    if taken < min_nodes:
        return False
    last_call_allowed, previous_back = seal_gate(previous_world, back, gone)
    return previous_back or (last_call_allowed and (last_call_over or taken >= max_nodes))


def admitted(slots_written: list[bool], min_nodes: int, max_nodes: int) -> tuple[int, ...] | None:
    """The tickets a seal admits, given whether the slot of each ticket
    1, 2, ... is written: the first ``max_nodes`` with a slot, in ticket
    order (their ranks are their positions), or ``None`` when fewer than
    ``min_nodes`` qualify."""
    chosen = tuple(t for t, written in enumerate(slots_written[:max_nodes], start=1) if written)
    return chosen if len(chosen) >= min_nodes else None


def rank_in_seal(tickets: tuple[int, ...], marks: bytes | None, ticket: int, mark: bytes) -> int | None:
    """This node's rank in a seal admitting ``tickets`` (in rank order), or
    ``None`` when it is not admitted.

    ``marks`` holds the fingerprint of each admitted slot as the sealer read
    it, :data:`MARK_SIZE` bytes per rank (``None``: a seal without them);
    ``mark`` is the fingerprint of the slot this node wrote. A store that
    lost its keys during a join restarts the ticket counter, so a later
    joiner can take a ticket a waiter already holds and overwrite its slot:
    the seal names that ticket once, and only the node whose slot the sealer
    read takes the rank. The other one is not admitted and joins the next
    round, as a late joiner does.
    """
    try:
        rank = tickets.index(ticket)
    except ValueError:
        return None
    if marks is not None and marks[rank * MARK_SIZE:(rank + 1) * MARK_SIZE] != mark:
        return None
    return rank


def is_spare(ticket: int, returning: bool, previous_world: int | None, max_nodes: int) -> bool:
    """A joiner beyond ``max_nodes``, or a newcomer while the running round is
    full, is a spare: like torch's redundancy list it waits without a join
    timeout and exits gracefully when the run closes."""
    return ticket > max_nodes or (not returning and previous_world is not None and previous_world >= max_nodes)


def hint_to_announce(round_no: int, hint: int) -> int | None:
    """The round hint a member of sealed round ``round_no`` writes back, having
    read ``hint``: ``round_no + 1`` when the hint is behind it (the store lost
    its keys, a restart without persistence), so that a newcomer opens the
    round the members count, not round 0; otherwise nothing."""
    return round_no + 1 if hint < round_no + 1 else None


def takeover_delay(ticket: int, min_nodes: int, max_nodes: int, step: float) -> float:
    """How long a waiter lets a sealable round stay unsealed before it seals
    the round itself.

    The designated sealers (tickets 1, ``min_nodes`` and ``max_nodes``) act
    at once. Every other waiter waits ``step`` seconds times its place among
    the others (ticket 2 first, then the next one ``step`` later): when the
    designated sealers are slow rather than dead, one more node tries every
    ``step`` seconds instead of every waiter at once, and each attempt reads
    every slot of the round (N waiters x N slots). Where the designated
    sealers died, the lowest live ticket seals.
    """
    designated = {1, min_nodes, max_nodes}
    if ticket in designated:
        return 0.0
    return step * (ticket - sum(1 for d in designated if d < ticket))
