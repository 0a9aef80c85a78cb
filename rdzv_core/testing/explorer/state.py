"""The explorer's state: configuration, store keys and nodes, as hashable tuples.

See :mod:`rdzv_core.testing.explorer.model` for what the fields mean to the
protocol. Times are in ticks relative to now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

from rdzv_core.protocol.decisions import MARK_SIZE

BEAT = b"beat"  # what a read of a present alive key returns (see module docstring)
IDLE, LIVE, DEAD, EXITED = "idle", "live", "dead", "exited"
#: Join steps independent of every other node's store operations: slot and
#: returning writes (read only by polls, heartbeats and a sealer that waits
#: for the slots it needs), learning a written seal (write-once), reading
#: slots (every slot it needs is written). Opening a round (reads the hint
#: and closed), taking a ticket (the order decides the ranks), reading the
#: previous seal, the seal CAS and the hint write race with others.
#: Polls and heartbeat ticks never interleave with these: they run only when
#: no store operation is under way.
LOCAL = frozenset({"slot", "returning", "wait", "seal_read"})
EVENTS = ("kill", "leave", "rejoin", "late", "lost", "stall", "wipe", "end")
_EVENT_INDEX = {kind: k for k, kind in enumerate(EVENTS)}


@dataclass(frozen=True)
class Config:
    """One bounded configuration: the world, the rules' parameters and the
    event budget (how many of each event may happen, in any order, at any
    point)."""

    name: str
    nodes: int = 3
    late: int = 0  # how many of the nodes start only on a "late" event
    min_nodes: int = 1
    max_nodes: int = 3
    ttl: int = 3  # keep_alive_interval = tick = 1
    max_round: int = 3  # joining a later round cuts the path (counted as truncated)
    last_call: int = 1  # ticks from the min_nodes-th ticket before any waiter's last call may be over
    kill: int = 0
    leave: int = 0
    rejoin: int = 0
    lost: int = 0
    stall: int = 0
    stall_ticks: tuple[int, ...] = (3,)
    stall_kinds: tuple[str, ...] = ("freeze",)
    wipe: int = 0
    wipe_while_running: bool = False  # the store loses its keys only while no join is under way
    end: int = 0

    def bound(self) -> str:
        """The bound, in words (printed by the tests)."""
        events = ", ".join(f"{k}<={getattr(self, k)}" for k in EVENTS if getattr(self, k))
        stall = f", stall of {'/'.join(map(str, self.stall_ticks))} ticks ({'/'.join(self.stall_kinds)})" \
            if self.stall else ""
        return (f"{self.nodes} nodes ({self.late} late), min_nodes={self.min_nodes}, max_nodes={self.max_nodes}, "
                f"TTL={self.ttl} ticks, last call>={self.last_call} ticks, rounds<={self.max_round}, "
                f"events: {events or 'none'}{stall}"
                f"{', wipe only while running' if self.wipe and self.wipe_while_running else ''}")


class Member(NamedTuple):
    """A node's place in a sealed round (the handler's ``Membership``)."""

    round: int
    rank: int
    world: int
    ticket: int


class Heart(NamedTuple):
    """A running heartbeat: beats for (round, rank), watches rank ``watched``."""

    round: int
    rank: int
    world: int
    watched: int
    watch: object
    ticked: bool  # the first tick only beats
    due: bool  # its tick of the current time unit is still to come
    restart: bool  # its last observation had num_nodes_waiting() > 0
    recording: bool  # death marker of `watched` created, counter add pending


class Join(NamedTuple):
    """A join under way: the next store operation (``step``) and what it knows."""

    step: str  # open, ticket, slot, returning, before, wait, seal_read, seal_cas, hint
    prev: Optional[Member]
    round: int = 0
    ticket: int = 0
    spare: bool = False
    prev_world: Optional[int] = None
    taken: int = 0
    admitted: Optional[tuple[int, ...]] = None
    mark: int = 0  # which write of its slot key it made (0: the first ever)
    marks: Optional[bytes] = None  # a sealer's marks of the slots it admits


class Node(NamedTuple):
    """One node: status, membership, heartbeat, join, last seal seen, shutdown progress."""

    status: str
    member: Optional[Member]
    hb: Optional[Heart]
    join: Optional[Join]
    seen: Optional[tuple[int, int]]  # (round, world) of the last seal it learned
    ending: int  # 1: shutdown to do; 2: own death marked, counter add (and key delete) to do


class Round(NamedTuple):
    """The store keys of one round (``p/r/<R>/...``)."""

    tickets: int
    slots: int  # bit t: slot of ticket t written
    seal: Optional[tuple[int, ...]]
    returning: int
    marks: int  # bit r: dead marker of rank r
    dead: int
    alive: tuple[int, ...]  # per rank: ticks until the key expires (0: absent)
    quorum: Optional[int] = None  # (model, not a key) when the min_nodes-th ticket was taken, relative
    seal_marks: Optional[bytes] = None  # the seal's slot marks (see decisions.rank_in_seal)
    #: (ticket, k) for each slot whose value is the k-th (k >= 1) write of its
    #: key: a slot's value tells its writers apart (its node, its join) and a
    #: ticket is handed out again only after the store lost its keys.
    rewrites: frozenset = frozenset()


class State(NamedTuple):
    """One state of the whole system (store, nodes, remaining events, history bits)."""

    hint: int
    closed: bool
    rounds: tuple[Round, ...]
    nodes: tuple[Node, ...]
    phases: tuple[int, ...]  # nodes with a running heartbeat, in tick order
    budget: tuple[int, ...]  # remaining events, in EVENTS order
    ended: bool  # the job ended
    sealed: int  # bit r: round r was ever sealed (survives a wipe)
    late_sealed: int  # bit r: round r was sealed after the job ended
    #: (round, ticket) of each slot key write, with how many came before
    #: (survives a wipe: what makes a second holder's slot value differ).
    slot_writes: frozenset = frozenset()


class Step(NamedTuple):
    """A transition: ``target`` is ``None`` when it leaves the bound; a
    ``violation`` names a broken safety property (its kind)."""

    label: str
    target: Optional[State]
    event: bool = False
    violation: Optional[str] = None


def replace_at(seq: tuple, i: int, item: object) -> tuple:
    """``seq`` with item ``i`` replaced."""
    return seq[:i] + (item,) + seq[i + 1:]


def is_running(n: Node) -> bool:
    """A live member whose workers run (no join under way, not shutting down)."""
    return (n.status == LIVE and n.member is not None and n.join is None and n.ending == 0
            and n.hb is not None and n.hb.round == n.member.round)


def contested(s: State, i: int, j: Join) -> bool:
    """Whether another node is about to write the same slot key as node ``i``
    (a ticket handed out twice): which value stays depends on the order."""
    return j.step == "slot" and any(
        k != i and m.status == LIVE and m.join is not None and m.join.step == "slot"
        and (m.join.round, m.join.ticket) == (j.round, j.ticket) for k, m in enumerate(s.nodes))


def slot_mark(rk: Round, ticket: int) -> int:
    """Which write of its key the value of slot ``ticket`` is."""
    return next((k for t, k in rk.rewrites if t == ticket), 0)


def mark_bytes(k: int) -> bytes:
    """A slot mark as a seal holds it (the real marks are CRCs of the values)."""
    return k.to_bytes(MARK_SIZE, "big")
