"""Counters of what a rendezvous does to its store.

One :class:`StoreCounters` instrument is shared by every agent of one run.
Both sides of every comparison feed it at the same level — the store
*client API* (torch's ``Store`` methods for torch's c10d backend, the adapter
primitives for rdzv) — counting calls (round trips) and the payload bytes
those calls send and receive (values and version tokens; keys and protocol
framing are not counted).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields

#: The operation kinds that get their own counter.
OP_KINDS = ("read", "cas", "write", "add", "wait", "other")


@dataclass
class Snapshot:
    """A frozen copy of the counters at one moment (subtract two for a window)."""

    ops: int = 0
    reads: int = 0
    cas: int = 0
    cas_lost: int = 0
    writes: int = 0
    adds: int = 0
    waits: int = 0
    other: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0

    @property
    def bytes_moved(self) -> int:
        """Payload bytes in both directions."""
        return self.bytes_sent + self.bytes_received

    def __sub__(self, other: Snapshot) -> Snapshot:
        return Snapshot(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})

    def __add__(self, other: Snapshot) -> Snapshot:
        return Snapshot(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def as_dict(self) -> dict[str, int]:
        """Plain dict (for pickling across processes and JSON)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


_KIND_FIELD = {"read": "reads", "cas": "cas", "write": "writes", "add": "adds", "wait": "waits", "other": "other"}


class StoreCounters:
    """Counters one run's agents add to concurrently.

    Each thread counts into a :class:`Snapshot` of its own (no lock on the
    hot path: with hundreds of agent threads a shared lock becomes a convoy
    that stalls the very calls being measured); :meth:`snapshot` sums them.
    """

    def __init__(self) -> None:
        self._mine = threading.local()
        self._all: list[Snapshot] = []
        self._lock = threading.Lock()  # only for registering a thread's counters

    def _own(self) -> Snapshot:
        try:
            return self._mine.counts  # type: ignore[no-any-return]
        except AttributeError:
            counts = self._mine.counts = Snapshot()
            with self._lock:
                self._all.append(counts)
            return counts

    def op(self, kind: str, sent: int = 0, received: int = 0, lost: bool = False) -> None:
        """Record one store call of ``kind`` that moved ``sent``/``received`` bytes."""
        cur = self._own()
        cur.ops += 1
        name = _KIND_FIELD[kind]
        setattr(cur, name, getattr(cur, name) + 1)
        cur.bytes_sent += sent
        cur.bytes_received += received
        if lost:
            cur.cas_lost += 1

    def snapshot(self) -> Snapshot:
        """The sum over all threads now (a call in flight may land in the next one)."""
        with self._lock:
            parts = list(self._all)
        total = Snapshot()
        for part in parts:
            total = total + Snapshot(**part.as_dict())
        return total
