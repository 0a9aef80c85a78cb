"""``rdzv close``, ``rdzv purge`` and ``rdzv runs``."""

from __future__ import annotations

import io
import pickle
import re
from dataclasses import dataclass

from rdzv_core.admin.report import RunStatus
from rdzv_core.admin.status import detect_protocol, nearest_runs, run_status
from rdzv_core.admin.target import AdminError, Connection
from rdzv_core.admin.torch_state import AllowListUnpickler, UnsafeStateError
from rdzv_core.backend import STATE_KEY, RdzvBackend
from rdzv_core.protocol import keys

#: Lost races a torch-state close retries before it gives up.
CLOSE_ATTEMPTS = 50
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``2h``, ``1d`` -> seconds; :class:`AdminError` otherwise."""
    found = _DURATION.match(text)
    if not found:
        raise AdminError(f"--older-than={text!r} is invalid: expected a duration such as 90s, 10m, 2h or 1d")
    return float(found.group(1)) * _UNIT[found.group(2)]


def close_run(connection: Connection) -> str:
    """Close the run as the handler's ``set_closed`` does; return what was done."""
    run_id = connection.target.run_id
    protocol = detect_protocol(connection)
    if protocol is None:
        raise AdminError(f"no run '{run_id}' to close at {connection.adapter.endpoint}; "
                         f"{nearest_runs(connection, run_id)}")
    if protocol == "scalable":
        connection.store.write(keys.CLOSED, b"1")
        return f"closed run '{run_id}' (protocol=scalable)"
    backend = RdzvBackend(connection.store, connection.target.backend, connection.codec)
    for _ in range(CLOSE_ATTEMPTS):
        current = backend.get_state()
        if current is None:
            raise AdminError(f"run '{run_id}': its torch state disappeared while it was closed")
        payload, token = current
        try:
            state = AllowListUnpickler(io.BytesIO(payload)).load()
        except UnsafeStateError as exc:
            raise AdminError(f"run '{run_id}': the torch state was not read, so it is not closed: {exc}") from None
        if getattr(state, "closed", False):
            return f"run '{run_id}' was closed already (protocol=torch)"
        state.closed = True
        result = backend.set_state(pickle.dumps(state), token)
        if result is not None and result[2]:
            return f"closed run '{run_id}' (protocol=torch)"
    raise AdminError(f"run '{run_id}': lost {CLOSE_ATTEMPTS} races to write the torch state in a row; try again")


def live_members(status: RunStatus) -> list[str]:
    """Members of the run that are beating (their beat is younger than the TTL)."""
    ttl = status.rules.get("heartbeat_ttl") or float("inf")
    return [f"member {m.rank} ({m.host}, pid {m.pid})" for m in status.members
            if m.state in ("alive", "late") and m.beat_age is not None and m.beat_age < ttl]


def purge_run(connection: Connection, force: bool, older_than: float | None) -> str:
    """Delete every key of the run; refuse a live (or too young) run unless ``force``."""
    run_id = connection.target.run_id
    try:
        status: RunStatus | None = run_status(connection)
    except AdminError:
        status = None  # no rendezvous keys (or unreadable ones): nothing beats
    if status is not None and not force:
        beating = live_members(status)
        if beating:
            raise AdminError(f"run '{run_id}' is live: {', '.join(beating[:3])}"
                             f"{' and more' if len(beating) > 3 else ''} beat{'s' if len(beating) == 1 else ''}; "
                             "close it first (rdzv close) or pass --force")
        age = status.last_activity_age
        if older_than is not None and (age is None or age < older_than):
            seen = "no activity seen" if age is None else f"last active {age:.0f} s ago"
            raise AdminError(f"run '{run_id}' is not older than {older_than:g} s ({seen}); pass --force to purge it")
    try:
        deleted = connection.adapter.purge()
    except NotImplementedError as exc:
        raise AdminError(f"{exc}; its keys cannot be purged by rdzv") from None
    return f"purged run '{run_id}': deleted {deleted} key{'' if deleted == 1 else 's'}"


@dataclass(frozen=True)
class RunRow:
    """One line of ``rdzv runs``."""

    run_id: str
    protocol: str
    round: int | None
    state: str
    members: int
    last_activity_age: float | None
    keys: int
    bytes: int


def run_row(connection: Connection) -> RunRow:
    """The ``rdzv runs`` line of the connection's run."""
    names = connection.adapter.list_keys("")
    size = sum(len(v) for v in connection.store.read_many(names) if v is not None) if names else 0
    try:
        status = run_status(connection)
    except AdminError:
        return RunRow(connection.target.run_id, "-", None, "no rendezvous keys", 0, None, len(names), size)
    state = "closed" if status.closed else "complete" if status.complete else "waiting"
    return RunRow(status.run_id, status.protocol, status.round, state, len(status.members),
                  status.last_activity_age, len(names), size)


def older_runs(rows: list[RunRow], older_than: float) -> list[RunRow]:
    """The runs whose last activity is known and older than ``older_than`` seconds."""
    return [r for r in rows if r.last_activity_age is not None and r.last_activity_age >= older_than]


def render_runs(rows: list[RunRow]) -> str:
    """``rdzv runs`` as a table."""
    table = [("run id", "protocol", "round", "state", "members", "last activity", "keys", "bytes")]
    for r in rows:
        age = "-" if r.last_activity_age is None else f"{r.last_activity_age:.0f} s ago"
        table.append((r.run_id, r.protocol, "-" if r.round is None else str(r.round), r.state, str(r.members),
                      age, str(r.keys), str(r.bytes)))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in table)
