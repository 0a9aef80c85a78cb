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
from typing import Callable

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
        whether the round is sealed now (by us or by a faster node)."""
        settings = self._settings
        count = min(tickets_taken, settings.max_nodes)
        slot_keys = [keys.slot(round_no, t) for t in range(1, count + 1)]
        if self._store.wait(slot_keys, SLOT_GRACE):  # the common case: one check
            written = [True] * count
        else:
            written = [v is not None for v in self._store.read_many(slot_keys)]
        admitted = decisions.admitted(written, settings.min_nodes, settings.max_nodes)
        if admitted is None:
            return False
        seal = keys.Seal(round_no, admitted, self._master_of(round_no, admitted[0]))
        value = self._codec.encode(seal.encode(), new_nonce())
        self._store.cas(keys.seal(round_no), None, value, landed=lambda cur: cur is not None and cur.value == value)
        self._store.write(keys.ROUND, str(round_no + 1).encode())
        return True

    def _master_of(self, round_no: int, ticket: int) -> tuple[str, int] | None:
        """The agent-store endpoint the holder of ``ticket`` announced in its slot
        (the future rank 0 announces it when it holds ticket 1), if any."""
        found = self._store.read(keys.slot(round_no, ticket))
        try:
            addr, port = json.loads(found.value)["master"] if found is not None else (None, None)
            return (addr, int(port)) if isinstance(addr, str) else None
        except (ValueError, KeyError, TypeError):
            return None

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
        round_no = self.open_round(previous.round_no + 1 if previous else 0)
        while True:
            ticket = self._store.increment(keys.ticket(round_no))
            self._store.write(keys.slot(round_no, ticket), self._describe(ticket))
            returning = previous is not None and previous.round_no == round_no - 1
            if returning:
                self._store.increment(keys.returning(round_no))
            # A newcomer while the current round is full is a spare: like
            # torch's redundancy list it waits without a join timeout.
            before = self.read_seal(round_no - 1) if round_no > 0 else None
            spare = decisions.is_spare(ticket, returning, before.world_size if before else None,
                                       self._settings.max_nodes)
            seal = self._await_seal(round_no, ticket, deadline, spare, before)
            if seal is None:  # the store lost the round's seal: start again where the hint says
                round_no = self.open_round(round_no + 1)
                continue
            rank = seal.rank_of(ticket)
            if rank is not None:
                return Membership(round_no, rank, seal.world_size, ticket), seal
            round_no += 1  # not admitted (late, or beyond max_nodes): next round

    def _progress(self, round_no: int) -> tuple[bool, int, int, int, int]:
        """One read: (closed, tickets taken, members back, previous members dead, round hint)."""
        closed, taken, back, gone, hint = self._store.read_many(
            [keys.CLOSED, keys.ticket(round_no), keys.returning(round_no), keys.dead(round_no - 1), keys.ROUND]
        )
        return closed is not None, counter(taken), counter(back), counter(gone), counter(hint)

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
        self, round_no: int, ticket: int, deadline: float, spare: bool, before: keys.Seal | None
    ) -> keys.Seal | None:
        """Wait until the round is sealed (sealing it when this node should);
        ``None`` when the round hint passed the round but its seal is gone."""
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
            _closed, _taken, back, gone, _hint = self._progress(round_no)
            allowed, complete = decisions.seal_gate(previous_world, back, gone)
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
            closed, taken, back, gone, hint = self._progress(round_no)
            if hint > round_no:
                # The hint moves past a round only after its seal is written, so
                # the seal is there -- unless the store lost its keys since.
                found = self._store.read(seal_key)
                return None if found is None else self._remember_seal(round_no, found.value)
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
