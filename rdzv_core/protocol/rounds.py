"""Joining and completing one round of the scalable protocol.

A join is O(1) small store operations per node: ``add`` a ticket, write a
slot, (for a member of the previous round) ``add`` to ``returning``, then
``wait`` on the round's seal. Exactly one node creates the seal (CAS if
absent), when:

* the ``max_nodes``-th ticket is taken (that joiner seals at once);
* a re-rendezvous has every live member of the previous round back
  (``returning + dead == previous world size``) and at least ``min_nodes``;
* ``last_call_timeout`` has passed since this node saw ``min_nodes`` tickets.

Only the holders of tickets 1, ``min_nodes`` and ``max_nodes`` seal as soon
as a condition holds; any other node steps in only after it has seen the
round sealable for :data:`SEAL_TAKEOVER` seconds times its place among the
others (its designated sealers died, or are slow), so N waiters never race N
seals (each of which reads N slots).

Waiters wake on the seal itself (the adapter's watch/notify); their periodic
wake-ups only drive the timers above and notice ``closed``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

from torch.distributed.elastic.rendezvous import (
    RendezvousClosedError,
    RendezvousGracefulExitError,
    RendezvousStateError,
    RendezvousTimeoutError,
)

from rdzv_core.codec import FrameCodec, FrameError, new_nonce
from rdzv_core.guarded import GuardedStore
from rdzv_core.protocol import keys
from rdzv_core.protocol import decisions
from rdzv_core.protocol.heartbeat import Membership
from rdzv_core.protocol.keys import counter

log = logging.getLogger(__name__)

#: A waiting node logs why its round is not complete yet every this many seconds (INFO).
PROGRESS_INTERVAL = 5.0
#: How long a sealer waits for slots whose tickets were taken but not yet written.
SLOT_GRACE = 2.0
#: How long a node that is not a designated sealer lets a sealable round stay
#: unsealed before sealing it itself.
SEAL_TAKEOVER = SLOT_GRACE + 2.0
#: Waiters that are not designated sealers wake this many times less often.
FOLLOWER_SLOWDOWN = 3


@dataclass(frozen=True)
class RoundSettings:
    """The timing and size rules of a run."""

    run_id: str
    min_nodes: int
    max_nodes: int
    join_timeout: float
    last_call_timeout: float
    check_interval: float = 1.0


def master_of(slot: bytes | None) -> tuple[str, int] | None:
    """The agent-store endpoint announced in a slot descriptor (the holder of
    ticket 1, normally the next rank 0, announces it), if any."""
    try:
        addr, port = json.loads(slot)["master"] if slot is not None else (None, None)
        return (addr, int(port)) if isinstance(addr, str) else None
    except (ValueError, KeyError, TypeError):
        return None


class _Progress(NamedTuple):
    """What a waiting node reads each time it wakes up without the seal."""

    closed: bool
    taken: int  # tickets of the round
    back: int  # members of the previous round that joined this one
    gone: int  # members of the previous round recorded dead
    hint: int  # the round hint
    slot: bytes | None  # this node's slot as the store holds it


class _Reopen(Exception):
    """The store lost this node's join: open again from ``first_round``."""

    def __init__(self, first_round: int) -> None:
        super().__init__(first_round)
        self.first_round = first_round


class RoundJoiner:
    """Runs one node through the rounds until it is admitted to one."""

    def __init__(
        self, store: GuardedStore, codec: FrameCodec, settings: RoundSettings, describe: Callable[[int], bytes]
    ) -> None:
        self._store = store
        self._codec = codec
        self._settings = settings
        self._describe = describe  # ticket -> this node's slot descriptor (JSON)
        self._seals: dict[int, keys.Seal] = {}
        self._first_round = 0  # the round a join opens first (after the previous membership)

    # -- seals ----------------------------------------------------------------

    def read_seal(self, round_no: int) -> keys.Seal | None:
        """The seal of ``round_no`` if it exists (checked and decoded)."""
        if round_no in self._seals:  # a seal never changes once written
            return self._seals[round_no]
        found = self._store.read(keys.seal(round_no))
        return None if found is None else self._remember_seal(round_no, found.value)

    def _remember_seal(self, round_no: int, raw: bytes) -> keys.Seal:
        """Decode (and cache) the seal of ``round_no`` as read from the store."""
        try:
            seal = keys.Seal.decode(self._codec.decode(raw).payload)
        except (FrameError, ValueError, KeyError) as exc:
            raise RendezvousStateError(
                f"rdzv run '{self._settings.run_id}': the seal of round {round_no} under key "
                f"'{keys.seal(round_no)}' is unusable: {exc}"
            ) from exc
        self._seals[round_no] = seal
        return seal

    def try_seal(self, round_no: int, tickets_taken: int) -> bool:
        """Admit the first ``max_nodes`` tickets whose slots are written; return
        whether the round is sealed now (by us or by a faster node).

        One read of the slots in the common case (all written); otherwise a
        wait of up to :data:`SLOT_GRACE` for the missing ones and a second
        read. The seal carries each admitted slot's mark (see
        :func:`~rdzv_core.protocol.decisions.rank_in_seal`) and the master
        endpoint announced in the first admitted slot."""
        settings = self._settings
        count = min(tickets_taken, settings.max_nodes)
        slot_keys = [keys.slot(round_no, t) for t in range(1, count + 1)]
        values = self._store.read_many(slot_keys)
        missing = [key for key, value in zip(slot_keys, values) if value is None]
        if missing:
            self._store.wait(missing, SLOT_GRACE)
            values = self._store.read_many(slot_keys)
        admitted = decisions.admitted([v is not None for v in values], settings.min_nodes, settings.max_nodes)
        if admitted is None:
            return False
        chosen = [values[t - 1] for t in admitted]
        marks = b"".join(keys.slot_mark(value) for value in chosen if value is not None)
        seal = keys.Seal(round_no, admitted, master_of(chosen[0]), marks)
        value = self._codec.encode(seal.encode(), new_nonce())
        self._store.cas(keys.seal(round_no), None, value, landed=lambda cur: cur is not None and cur.value == value)
        self._store.write(keys.ROUND, str(round_no + 1).encode())
        return True

    # -- joining ----------------------------------------------------------------

    def open_round(self, hint: int) -> int:
        """The round to join: ``hint`` or the newest round opened, if later.

        One read, which also checks that the run is not closed. The round
        found may have been sealed a moment ago (the sealer bumps ``round``
        right after the seal); a joiner then finds itself not admitted and
        moves on to the next round.
        """
        closed, opened = self._store.read_many([keys.CLOSED, keys.ROUND])
        if closed is not None:
            raise RendezvousClosedError(f"rdzv run '{self._settings.run_id}' is closed")
        return max(hint, counter(opened))

    def join(self, previous: Membership | None, deadline: float) -> tuple[Membership, keys.Seal]:
        """Join rounds until admitted; return our membership and the seal."""
        self._first_round = previous.round_no + 1 if previous else 0
        round_no = self.open_round(self._first_round)
        while True:
            ticket = self._store.increment(keys.ticket(round_no))
            descriptor = self._describe(ticket)
            self._store.write(keys.slot(round_no, ticket), descriptor)
            returning = previous is not None and previous.round_no == round_no - 1
            if returning:
                self._store.increment(keys.returning(round_no))
            # A newcomer while the current round is full is a spare: like
            # torch's redundancy list it waits without a join timeout.
            before = self.read_seal(round_no - 1) if round_no > 0 else None
            spare = decisions.is_spare(ticket, returning, before.world_size if before else None,
                                       self._settings.max_nodes)
            try:
                seal = self._await_seal(round_no, ticket, descriptor, deadline, spare, before)
            except _Reopen as lost:  # the store lost our join or the round's seal: join afresh
                round_no = self.open_round(lost.first_round)
                continue
            rank = seal.rank_of(ticket, keys.slot_mark(descriptor))
            if rank is not None:
                return Membership(round_no, rank, seal.world_size, ticket), seal
            if ticket in seal.tickets:
                log.warning("rdzv run '%s': round %d admitted ticket %d, but the slot the sealer read is another "
                            "node's (the store lost its keys during the join and handed the ticket out again); "
                            "joining round %d", self._settings.run_id, round_no, ticket, round_no + 1)
            round_no += 1  # not admitted (late, or beyond max_nodes): next round

    def _progress(self, round_no: int, ticket: int) -> _Progress:
        """One read of what a waiter watches, its own slot included."""
        closed, taken, back, gone, hint, slot = self._store.read_many(
            [keys.CLOSED, keys.ticket(round_no), keys.returning(round_no), keys.dead(round_no - 1), keys.ROUND,
             keys.slot(round_no, ticket)]
        )
        return _Progress(closed is not None, counter(taken), counter(back), counter(gone), counter(hint), slot)

    def _report_progress(self, round_no: int, taken: int, back: int, gone: int, previous_world: int | None,
                         quorum_since: float | None, deadline: float, spare: bool, now: float) -> None:
        """One INFO line: why the round is not complete yet (the sentence of ``rdzv status``)."""
        from rdzv_core.admin.explain import round_wait_sentence

        settings = self._settings
        last_call_left = None if quorum_since is None else quorum_since + settings.last_call_timeout - now
        sentence = round_wait_sentence(round_no, taken, settings.min_nodes, settings.max_nodes, previous_world,
                                       back, gone, last_call_left, None if spare else deadline - now)
        log.info("rdzv run '%s': waiting for round %d: %s", settings.run_id, round_no, sentence)

    def _await_seal(
        self, round_no: int, ticket: int, descriptor: bytes, deadline: float, spare: bool, before: keys.Seal | None
    ) -> keys.Seal:
        """Wait until the round is sealed (sealing it when this node should).

        Raises :class:`_Reopen` when the store lost this join (our slot is
        gone or another node's: the store lost its keys and handed our ticket
        out again) or the round's seal (the round hint passed the round)."""
        settings = self._settings
        seal_key = keys.seal(round_no)
        # Only designated sealers run the last-call timer and wake every
        # check_interval; the rest check now and then for closed/takeover.
        designated = ticket in (1, settings.min_nodes, settings.max_nodes)
        takeover = decisions.takeover_delay(ticket, settings.min_nodes, settings.max_nodes, SEAL_TAKEOVER)
        interval = settings.check_interval * (1 if designated else FOLLOWER_SLOWDOWN)
        quorum_since = time.monotonic() if ticket >= settings.min_nodes else None
        sealable_since: float | None = None
        previous_world = before.world_size if before is not None else None
        next_report = time.monotonic() + PROGRESS_INTERVAL
        if quorum_since is not None:
            first = self._progress(round_no, ticket)
            allowed, complete = decisions.seal_gate(previous_world, first.back, first.gone)
            if complete or (allowed and ticket == settings.max_nodes):
                self.try_seal(round_no, ticket)
        while True:
            now = time.monotonic()
            timeout = interval
            if designated and quorum_since is not None:
                timeout = min(timeout, max(quorum_since + settings.last_call_timeout - now, 0.05))
            if not spare:
                timeout = min(timeout, deadline - now)
            raw = self._store.wait_read(seal_key, max(timeout, 0.001))
            if raw is not None:  # the wake-up carries the seal where the store can
                return self._remember_seal(round_no, raw)
            closed, taken, back, gone, hint, slot = self._progress(round_no, ticket)
            if hint > round_no:
                # The hint moves past a round only after its seal is written, so
                # the seal is there -- unless the store lost its keys since.
                found = self._store.read(seal_key)
                if found is None:
                    raise _Reopen(round_no + 1)
                return self._remember_seal(round_no, found.value)
            if slot != descriptor:
                log.warning("rdzv run '%s': the store lost this node's join of round %d (its slot %d is %s); "
                            "joining again", settings.run_id, round_no, ticket,
                            "gone" if slot is None else "another node's")
                raise _Reopen(self._first_round)
            if closed:
                if spare:
                    raise RendezvousGracefulExitError(f"rdzv run '{settings.run_id}' is closed; spare node exits")
                raise RendezvousClosedError(f"rdzv run '{settings.run_id}' is closed")
            now = time.monotonic()
            if not spare and now >= deadline:
                raise RendezvousTimeoutError(
                    f"rdzv run '{settings.run_id}': round {round_no} did not complete within "
                    f"join_timeout={settings.join_timeout:g} s (min_nodes={settings.min_nodes})"
                )
            if taken >= settings.min_nodes and quorum_since is None:
                quorum_since = now
            if now >= next_report:
                next_report = now + PROGRESS_INTERVAL
                self._report_progress(round_no, taken, back, gone, previous_world, quorum_since, deadline, spare, now)
            last_call_over = quorum_since is not None and now - quorum_since >= settings.last_call_timeout
            if not decisions.sealable(taken, back, gone, previous_world, settings.min_nodes, settings.max_nodes,
                                      last_call_over):
                sealable_since = None
                continue
            sealable_since = now if sealable_since is None else sealable_since
            if now - sealable_since >= takeover:
                self.try_seal(round_no, taken)
