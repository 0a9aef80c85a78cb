"""``ScalableRendezvousHandler``: torch's handler interface on rdzv's protocol.

It gives torch's elastic agent everything it relies on, with torch's meaning:
``next_rendezvous`` (rank, world size, a per-round store prefix and the
bootstrap store info of rank 0's agent store), ``min_nodes``/``max_nodes``
with ``last_call_timeout`` and ``join_timeout``, ``num_nodes_waiting``,
``is_closed``/``set_closed``, ``shutdown`` (closes the run, as torch's does),
``use_agent_store``, ``get_run_id`` and ``get_backend``.

Unlike torch's handler, rank 0 publishes MASTER_ADDR/MASTER_PORT into every
round's store, so a replacement node that is not rank 0 always finds them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass

import torch.distributed as dist
from torch.distributed.elastic.utils.distributed import get_free_port
from torch.distributed.elastic.rendezvous import (
    RendezvousHandler,
    RendezvousInfo,
    RendezvousStoreInfo,
)

from rdzv_core.codec import FrameCodec
from rdzv_core.guarded import GuardedStore
from rdzv_core.protocol import keys
from rdzv_core.protocol.heartbeat import Heartbeat, Membership, record_death
from rdzv_core.protocol.decisions import nodes_waiting
from rdzv_core.protocol.events import RendezvousEvents
from rdzv_core.protocol.rounds import RoundJoiner, RoundSettings
from rdzv_core.settings import CoreSettings

log = logging.getLogger(__name__)

#: An observation older than this many heartbeat ticks means the store stopped answering.
STALE_OBSERVATION_TICKS = 3


@dataclass(frozen=True)
class HandlerSettings:
    """Settings of one scalable handler, taken from the run's :class:`~rdzv_core.settings.CoreSettings`."""

    rounds: RoundSettings
    local_addr: str
    keep_alive_interval: float
    keep_alive_max_attempt: int

    @property
    def heartbeat_ttl(self) -> float:
        """How long a member may go without a beat before it counts as dead."""
        return self.keep_alive_interval * self.keep_alive_max_attempt

    @classmethod
    def of(cls, core: CoreSettings) -> HandlerSettings:
        """The handler's view of the run's parsed settings (torch's keys, torch's defaults)."""
        return cls(
            rounds=RoundSettings(
                run_id=core.run_id,
                min_nodes=core.min_nodes,
                max_nodes=core.max_nodes,
                join_timeout=core.join_timeout,
                last_call_timeout=core.last_call_timeout,
                check_interval=min(1.0, core.keep_alive_interval),
            ),
            local_addr=core.node_addr,
            keep_alive_interval=core.keep_alive_interval,
            keep_alive_max_attempt=core.keep_alive_max_attempt,
        )


class ScalableRendezvousHandler(RendezvousHandler):
    """rdzv's own rendezvous handler over any adapter (see module docstring)."""

    def __init__(
        self,
        backend_name: str,
        settings: HandlerSettings,
        store: GuardedStore,
        c10d_store: dist.Store,
        codec: FrameCodec,
    ) -> None:
        self._backend_name = backend_name
        self._settings = settings
        self._store = store
        self._c10d_store = c10d_store
        self._node = f"{settings.local_addr}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._joiner = RoundJoiner(store, codec, settings.rounds, self._slot_descriptor)
        self._member: Membership | None = None
        self._heartbeat: Heartbeat | None = None
        self._agent_store_server: dist.TCPStore | None = None
        self._lock = threading.Lock()
        self._answering_stale = False
        self._events = RendezvousEvents(settings.rounds.run_id, self._node, settings.local_addr, os.getpid())
        self._join_deadline_wall: float | None = None

    # -- identity ------------------------------------------------------------------

    def get_backend(self) -> str:
        """See base class."""
        return self._backend_name

    def get_run_id(self) -> str:
        """See base class."""
        return self._settings.rounds.run_id

    @property
    def use_agent_store(self) -> bool:
        """See base class (the same switch as torch's handler)."""
        return os.getenv("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "0") != "1"

    @property
    def membership(self) -> Membership | None:
        """This node's current round, rank and world size (None before the first)."""
        return self._member

    # -- the rendezvous ---------------------------------------------------------------

    def next_rendezvous(self) -> RendezvousInfo:
        """See base class (raises ``RendezvousClosedError`` once the run is closed)."""
        deadline = time.monotonic() + self._settings.rounds.join_timeout
        self._join_deadline_wall = time.time() + self._settings.rounds.join_timeout  # for rdzv status
        self._events.joining()
        try:
            member, seal = self._joiner.join(self._member, deadline)
        except Exception as exc:
            self._events.failed("next_rendezvous", exc)
            raise
        self._events.joined(member.round_no, member.rank, member.world_size)
        if self._store.metrics is not None:
            self._store.metrics.joined(member.world_size)
        log.info("rdzv run '%s': round %d complete: rank %d of world size %d, in %.1f s", self.get_run_id(),
                 member.round_no, member.rank, member.world_size,
                 time.monotonic() - (deadline - self._settings.rounds.join_timeout))
        with self._lock:
            self._stop_heartbeats()
            self._member = member
            self._heartbeat = Heartbeat(
                self._store, member, self._settings.keep_alive_interval, self._settings.heartbeat_ttl,
                tick=self._settings.rounds.check_interval, events=self._events,
            ).start()
        store = dist.PrefixStore(f"rdzv.{self.get_run_id()}.{member.round_no}", self._c10d_store)
        return RendezvousInfo(store, member.rank, member.world_size, self._bootstrap_info(member.rank, store, seal))

    # -- the bootstrap store (MASTER_ADDR/PORT) ----------------------------------------

    def _master_port(self) -> int:
        """The port rank 0's workers will find their store on this round: a new
        agent store (or, when the agent store is not shared, a free port).

        A new one every round, as rdzv's torch handler does: torch's workers
        prefix their keys only by the restart count, which a membership change
        does not bump, so workers of a second round on the same store would
        read the first round's gloo addresses and fail to connect. (The
        previous server closes when it is dropped; its workers were stopped
        before this round began.)"""
        if not self.use_agent_store:
            return get_free_port()
        self._agent_store_server = dist.TCPStore(self._settings.local_addr, 0, is_master=True, multi_tenant=True)
        return self._agent_store_server.port

    def _slot_descriptor(self, ticket: int) -> bytes:
        """Who holds ``ticket``. The holder of ticket 1 (normally the next rank 0)
        announces its master endpoint; the sealer copies it into the seal, so
        the other members learn it without another store round trip."""
        doc: dict[str, object] = {"node": self._node, "addr": self._settings.local_addr, "pid": os.getpid(),
                                  **self._rules_for_readers()}
        if ticket == 1:
            doc["master"] = [self._settings.local_addr, self._master_port()]
        return json.dumps(doc).encode()

    def _rules_for_readers(self) -> dict[str, object]:
        """What a one-shot reader (``rdzv status``) needs to explain a waiting
        round, put in the slot: when it was written and this node's join
        deadline (wall clock), and the run's size and timing rules."""
        settings = self._settings
        return {"at": round(time.time(), 3), "deadline": self._join_deadline_wall,
                "rules": {"min": settings.rounds.min_nodes, "max": settings.rounds.max_nodes,
                          "last_call": settings.rounds.last_call_timeout, "ttl": settings.heartbeat_ttl,
                          "interval": settings.keep_alive_interval}}

    def _bootstrap_info(self, rank: int, store: dist.Store, seal: keys.Seal) -> RendezvousStoreInfo:
        """MASTER_ADDR/PORT of this round: rank 0 publishes them under the round's
        prefix every round (torch's keys); the others take them from the seal,
        or read torch's keys when the seal carries none."""
        addr = self._settings.local_addr
        if rank == 0:
            # A master in the seal was announced by the seal's first ticket: us.
            port = seal.master[1] if seal.master is not None else self._master_port()
            store.set(RendezvousStoreInfo.MASTER_ADDR_KEY, addr.encode())
            store.set(RendezvousStoreInfo.MASTER_PORT_KEY, str(port).encode())
            return RendezvousStoreInfo(addr, port)
        if seal.master is not None:
            return RendezvousStoreInfo(seal.master[0], seal.master[1])
        return RendezvousStoreInfo.build(rank, store, local_addr=addr)

    def num_nodes_waiting(self) -> int:
        """Nodes the running round must restart for: members that left it for
        the next round, dead members, and waiting newcomers while there is
        room (:func:`~rdzv_core.protocol.decisions.nodes_waiting`).

        Answered from the heartbeat's last observation (it reads these
        counters every tick anyway), so this never touches the store: torch's
        agent calls it from its monitor loop, which a store error would end
        and a blocked read would stall. While the store does not answer, the
        last observation stands, and that is logged once per outage. Before
        the round's first observation it asks for one in the background and
        answers 0.
        """
        member = self._member
        heartbeat = self._heartbeat
        if member is None or heartbeat is None or heartbeat.member != member:
            return 0
        seen = heartbeat.observed
        if seen is None:
            heartbeat.observe_soon()
            return 0
        # Until the regular observations begin (the heartbeat's second tick,
        # up to keep_alive_interval + 1 s after the round), the one-off early
        # observation is as fresh as it can be.
        self._note_staleness(time.monotonic() - max(seen.at, heartbeat.regular_from))
        return nodes_waiting(member.world_size, self._settings.rounds.max_nodes, seen.taken, seen.back,
                             seen.gone, seen.closed)

    def _note_staleness(self, age: float) -> None:
        """Log once when ``num_nodes_waiting`` starts answering from an old
        observation (the store stopped answering), and once when it is fresh again."""
        stale = age > STALE_OBSERVATION_TICKS * self._settings.rounds.check_interval
        if stale and not self._answering_stale:
            log.warning("rdzv run '%s': the store has not answered for %.1f s; num_nodes_waiting answers "
                        "from the last observation", self.get_run_id(), age)
        elif not stale and self._answering_stale:
            log.warning("rdzv run '%s': num_nodes_waiting answers from fresh observations again", self.get_run_id())
        self._answering_stale = stale

    # -- closing and leaving ----------------------------------------------------------

    def is_closed(self) -> bool:
        """See base class."""
        return self._store.read(keys.CLOSED) is not None

    def set_closed(self) -> None:
        """See base class."""
        self._store.write(keys.CLOSED, b"1")
        self._events.closed()

    def shutdown(self) -> bool:
        """End the rendezvous for everyone, as torch's handler does.

        torch's launcher calls this when its agent ends, normally or with a
        failure (not when a signal kills it, so a node taken away by its
        scheduler does not end the job). The run is closed, so a spare or a
        late joiner exits instead of starting the finished job again, and
        the members still finishing are not restarted for it (a closed run
        counts nobody waiting); then this node stops beating. Returns whether
        the store took the close.
        """
        try:
            self.set_closed()
            closed = True
        except Exception as exc:  # noqa: BLE001 - shutting down must not fail the agent's exit
            self._events.failed("shutdown", exc)
            log.warning("rdzv run '%s': could not close the rendezvous: %s", self.get_run_id(), exc)
            closed = False
        with self._lock:
            self._stop_heartbeats()
            self._member = None
        return closed

    def leave(self) -> bool:
        """Leave while the others go on: stop beating and record our departure
        at once, so the remaining members re-rendezvous without waiting for
        a TTL. (torch's agent never calls this; :meth:`shutdown` ends the run.)"""
        with self._lock:
            self._stop_heartbeats()
            member, self._member = self._member, None
        if member is not None:
            try:
                record_death(self._store, member.round_no, member.rank)
                self._store.delete(keys.alive(member.round_no, member.rank))
            except Exception:  # noqa: BLE001 - leaving must not fail the caller
                return False
        return True

    def _stop_heartbeats(self) -> None:
        """Stop the heartbeat thread (also what a crash looks like to others)."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
