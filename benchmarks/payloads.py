"""Realistic rendezvous states: what torch's handler pickles for N nodes.

Built from torch's own ``_RendezvousState`` and ``_NodeDesc`` so the bytes
are exactly what ``DynamicRendezvousHandler`` writes. Nodes get distinct
host names and pids, as agents on separate machines have (agents that share
one host name pickle smaller, because pickle memoizes repeated strings).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any


def torch_state(nodes: int, complete: bool = True, round_: int = 1) -> Any:
    """A ``_RendezvousState`` with ``nodes`` participants and heartbeats."""
    from torch.distributed.elastic.rendezvous.dynamic_rendezvous import _NodeDesc, _RendezvousState

    state = _RendezvousState()
    state.round = round_
    state.complete = complete
    now = datetime.now(timezone.utc)
    descs = [_NodeDesc(f"node{i:04d}.cluster.example.com", 40000 + i, 0) for i in range(nodes)]
    for rank, desc in enumerate(sorted(descs)):
        state.participants[desc] = rank if complete else 0
        state.last_heartbeats[desc] = now - timedelta(microseconds=7919 * rank)
    return state


def state_bytes(nodes: int, complete: bool = True) -> bytes:
    """``pickle.dumps`` of :func:`torch_state`, as torch's handler does it."""
    import pickle

    return pickle.dumps(torch_state(nodes, complete))
