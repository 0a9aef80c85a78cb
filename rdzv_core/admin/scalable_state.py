"""Reading a scalable-protocol run (``p/...`` keys) for ``rdzv status``.

Three small reads: the round hint and ``closed``; the running round's seal
(and any later one the hint has not caught up with); then, in one
``read_many``, every member's slot, heartbeat and death marker, and the next
round's counters, followed by the next round's slots. Nothing is written.
Beat ages come from the wall clock in each beat (:func:`~rdzv_core.protocol.keys.beat_time`)
against this machine's clock, so they are as good as the hosts' clock sync.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rdzv_core.admin.explain import is_late, round_wait_sentence, silent_member_sentence
from rdzv_core.admin.report import NodeLine, RunStatus
from rdzv_core.codec import FrameCodec, FrameError
from rdzv_core.guarded import GuardedStore
from rdzv_core.protocol import keys
from rdzv_core.protocol.keys import counter

#: At most this many later seals are looked for past the round hint.
MAX_ROUNDS_AHEAD = 64
#: At most this many waiting slots are listed.
MAX_SLOTS = 4096


@dataclass(frozen=True)
class Rules:
    """The run's size and timing rules (from the slots, else from the command line)."""

    min_nodes: int | None
    max_nodes: int | None
    last_call: float | None
    ttl: float | None
    interval: float | None

    def merged(self, slot: dict[str, Any] | None) -> Rules:
        """These rules with what a slot descriptor announced taking precedence."""
        found = (slot or {}).get("rules") or {}
        return Rules(found.get("min", self.min_nodes), found.get("max", self.max_nodes),
                     found.get("last_call", self.last_call), found.get("ttl", self.ttl),
                     found.get("interval", self.interval))


def _descriptor(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _line(doc: dict[str, Any] | None, state: str, **fields: Any) -> NodeLine:
    doc = doc or {}
    pid = doc.get("pid")
    return NodeLine(node=str(doc.get("node", "?")), host=str(doc.get("addr", "?")),
                    pid=int(pid) if isinstance(pid, int) else None, state=state, **fields)


def _seal(store: GuardedStore, codec: FrameCodec, round_no: int) -> keys.Seal | None:
    found = store.read(keys.seal(round_no))
    if found is None:
        return None
    try:
        return keys.Seal.decode(codec.decode(found.value).payload)
    except (FrameError, ValueError, KeyError) as exc:
        raise ValueError(f"the seal of round {round_no} is unusable: {exc}") from None


def latest_seal(store: GuardedStore, codec: FrameCodec, hint: int) -> keys.Seal | None:
    """The newest sealed round at or after ``hint - 1`` (``None``: none)."""
    seal = _seal(store, codec, max(hint - 1, 0))
    if seal is None:
        return None
    for _ in range(MAX_ROUNDS_AHEAD):
        later = _seal(store, codec, seal.round_no + 1)
        if later is None:
            break
        seal = later
    return seal


def scalable_status(store: GuardedStore, codec: FrameCodec, rules: Rules, now: float,
                    head: tuple[str, str, str]) -> RunStatus:
    """The status of the run ``store`` holds; ``head`` is (backend, endpoint, run id)."""
    closed_raw, hint_raw = store.read_many([keys.CLOSED, keys.ROUND])
    seal = latest_seal(store, codec, counter(hint_raw))
    running = seal.round_no if seal is not None else None
    open_round = running + 1 if running is not None else counter(hint_raw)
    wanted = [keys.ticket(open_round), keys.returning(open_round)]
    if seal is not None:
        wanted.append(keys.dead(seal.round_no))
        for rank, ticket in enumerate(seal.tickets):
            wanted += [keys.slot(seal.round_no, ticket), keys.alive(seal.round_no, rank),
                       keys.dead_marker(seal.round_no, rank)]
    values = store.read_many(wanted)
    taken, back = counter(values[0]), counter(values[1])
    gone = counter(values[2]) if seal is not None else 0
    waiting_docs = [_descriptor(v) for v in store.read_many(
        [keys.slot(open_round, t) for t in range(1, min(taken, MAX_SLOTS) + 1)])]
    members, member_docs = [], []
    if seal is not None:
        for rank, ticket in enumerate(seal.tickets):
            slot_raw, beat, marker = values[3 + 3 * rank: 6 + 3 * rank]
            doc = _descriptor(slot_raw)
            member_docs.append(doc)
            rules = rules.merged(doc)
            wall = keys.beat_time(beat)
            age = None if wall is None else max(now - wall, 0.0)
            members.append(_line(doc, "alive", rank=rank, ticket=ticket, beat_age=age))
            members[-1].state = "dead" if marker is not None else "silent" if beat is None else "alive"
    returners = {m.node for m in members}
    waiting = []
    for number, doc in enumerate(waiting_docs, start=1):
        rules = rules.merged(doc)
        node = str((doc or {}).get("node", "?"))
        waiting.append(_line(doc, "returning" if node in returners else "waiting", ticket=number))
    for member in members:
        if member.state != "dead" and member.node in {w.node for w in waiting if w.state == "returning"}:
            member.state = "left"
        elif member.state == "alive" and is_late(member.beat_age, rules.interval):
            member.state = "late"
    if seal is not None and rules.max_nodes is not None and seal.world_size >= rules.max_nodes:
        for line in waiting:
            if line.state == "waiting":
                line.state = "spare"
    closed = closed_raw is not None
    why = _why(closed, seal, open_round, taken, back, gone, members, waiting_docs, rules, now)
    ages = [m.beat_age for m in members if m.beat_age is not None]
    ages += [now - d["at"] for d in waiting_docs if d and isinstance(d.get("at"), (int, float))]
    backend, endpoint, run_id = head
    return RunStatus(backend, endpoint, run_id, "scalable", running if running is not None else open_round,
                     seal is not None and taken == 0, closed, why, members, waiting,
                     {"min_nodes": rules.min_nodes, "max_nodes": rules.max_nodes,
                      "last_call_timeout": rules.last_call, "heartbeat_ttl": rules.ttl,
                      "keep_alive_interval": rules.interval},
                     max(min(ages), 0.0) if ages else None)


def _why(closed: bool, seal: keys.Seal | None, open_round: int, taken: int, back: int, gone: int,
         members: list[NodeLine], waiting_docs: list[dict[str, Any] | None], rules: Rules, now: float) -> str:
    if closed:
        return "the run is closed: its agents end (a spare exits gracefully) and no round starts again"
    late = [m for m in members if m.state in ("late", "silent")]
    if late and taken == 0:
        worst = max(late, key=lambda m: m.beat_age if m.beat_age is not None else float("inf"))
        assert worst.rank is not None
        return silent_member_sentence(worst.rank, worst.host, worst.pid, worst.beat_age, rules.ttl)
    deadlines = [d["deadline"] for d in waiting_docs if d and isinstance(d.get("deadline"), (int, float))]
    join_left = min(deadlines) - now if deadlines else None
    last_call_left = None
    if rules.min_nodes is not None and rules.last_call is not None and taken >= rules.min_nodes:
        quorum_slot = waiting_docs[rules.min_nodes - 1] if len(waiting_docs) >= rules.min_nodes else None
        if quorum_slot and isinstance(quorum_slot.get("at"), (int, float)):
            last_call_left = quorum_slot["at"] + rules.last_call - now
    return round_wait_sentence(open_round, taken, rules.min_nodes, rules.max_nodes,
                               seal.world_size if seal is not None else None, back, gone, last_call_left, join_left)
