"""``rdzv status``: find which protocol a run uses and report its live state."""

from __future__ import annotations

import difflib
import time
from datetime import datetime, timezone

from rdzv_core.admin.report import RunStatus
from rdzv_core.admin.scalable_state import Rules, scalable_status
from rdzv_core.admin.target import AdminError, Connection
from rdzv_core.admin.torch_state import UnsafeStateError, decode_torch_state
from rdzv_core.backend import STATE_KEY
from rdzv_core.guarded import StoreFailure
from rdzv_core.protocol import keys


def rules_of(connection: Connection) -> Rules:
    """The run's rules as the command line gives them (torch's defaults otherwise)."""
    core = connection.core
    return Rules(connection.target.min_nodes, connection.target.max_nodes, core.last_call_timeout,
                 core.heartbeat_ttl, core.keep_alive_interval)


def nearest_runs(connection: Connection, run_id: str) -> str:
    """The end of an "unknown run" message: the run ids nearest to ``run_id``."""
    try:
        ids = connection.adapter.run_ids()
    except NotImplementedError:
        return "this backend cannot list the runs its store holds"
    if not ids:
        return "the store holds no run at all"
    near = difflib.get_close_matches(run_id, ids, n=5, cutoff=0.6)
    if near:
        return "nearest run ids: " + ", ".join(near)
    shown = sorted(ids)[:5]
    return (f"no run id is near it; the store holds {len(ids)} run{'' if len(ids) == 1 else 's'}: "
            + ", ".join(shown) + (", ..." if len(ids) > len(shown) else ""))


def detect_protocol(connection: Connection) -> str | None:
    """``torch`` or ``scalable`` as the run's keys show (``--rdzv-conf protocol=``
    decides when both are there), ``None`` when the run has no rendezvous keys."""
    state, hint, closed, first = connection.store.read_many([STATE_KEY, keys.ROUND, keys.CLOSED, keys.ticket(0)])
    scalable = any(value is not None for value in (hint, closed, first))
    if state is not None and scalable and connection.core.protocol_given:
        return connection.core.protocol
    if state is not None:
        return "torch"
    return "scalable" if scalable else None


def run_status(connection: Connection) -> RunStatus:
    """The live state of the connection's run; :class:`AdminError` with one line otherwise."""
    target = connection.target
    head = (target.backend, connection.adapter.endpoint, target.run_id)
    try:
        protocol = detect_protocol(connection)
        if protocol is None:
            raise AdminError(f"no run '{target.run_id}' in the {target.backend} store at "
                             f"{connection.adapter.endpoint}; {nearest_runs(connection, target.run_id)}")
        if protocol == "scalable":
            try:
                return scalable_status(connection.store, connection.codec, rules_of(connection), time.time(), head)
            except ValueError as exc:
                raise AdminError(f"run '{target.run_id}': {exc}") from None
        found = connection.store.read(STATE_KEY)
        if found is None:
            raise AdminError(f"run '{target.run_id}': its torch state disappeared while it was read")
        try:
            state = decode_torch_state(found.value, connection.codec)
        except UnsafeStateError as exc:
            raise AdminError(f"run '{target.run_id}': the torch rendezvous state under key '{STATE_KEY}' was "
                             f"not read: {exc}") from None
        from rdzv_core.admin.torch_status import torch_status

        return torch_status(state, rules_of(connection), head, datetime.now(timezone.utc))
    except StoreFailure as exc:
        raise AdminError(str(exc)) from None
