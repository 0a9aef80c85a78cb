"""What ``rdzv status`` reports, and how it is printed (text and JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class NodeLine:
    """One node of a run: a member of the running round, a waiter or a spare."""

    node: str
    host: str
    pid: int | None
    state: str  # alive | late | silent | dead | left | waiting | returning | spare
    rank: int | None = None
    ticket: int | None = None
    beat_age: float | None = None  # seconds since its last heartbeat (None: none seen)


@dataclass
class RunStatus:
    """The live state of one run."""

    backend: str
    endpoint: str
    run_id: str
    protocol: str  # torch | scalable
    round: int | None
    complete: bool
    closed: bool
    why: str
    members: list[NodeLine] = field(default_factory=list)
    waiting: list[NodeLine] = field(default_factory=list)
    rules: dict[str, float | int | None] = field(default_factory=dict)
    #: Seconds since the newest heartbeat or join any node wrote (None: none seen).
    last_activity_age: float | None = None

    def to_json(self) -> str:
        """The whole report as one JSON document."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def _age(age: float | None) -> str:
    return "-" if age is None else f"{age:.1f} s"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def render_text(status: RunStatus) -> str:
    """The report as a person reads it."""
    state = "closed" if status.closed else ("complete" if status.complete else "not complete")
    round_text = "-" if status.round is None else str(status.round)
    lines = [
        f"run '{status.run_id}' on {status.backend} at {status.endpoint} (protocol={status.protocol})",
        f"round {round_text}: {state}; {len(status.members)} member{'' if len(status.members) == 1 else 's'}, "
        f"{len(status.waiting)} waiting",
        f"why: {status.why}",
    ]
    if status.members:
        lines.append("members:")
        lines += _table([("rank", "host", "pid", "node", "beat age", "state")] + [
            (str(m.rank), m.host, str(m.pid if m.pid is not None else "-"), m.node, _age(m.beat_age), m.state)
            for m in status.members])
    if status.waiting:
        lines.append("waiting for the next round:")
        lines += _table([("ticket", "host", "pid", "node", "state")] + [
            (str(w.ticket if w.ticket is not None else "-"), w.host, str(w.pid if w.pid is not None else "-"),
             w.node, w.state) for w in status.waiting])
    return "\n".join(lines)
