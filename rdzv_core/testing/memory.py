"""An in-memory reference adapter.

It is the smallest complete implementation of the contract: a dict behind a
lock, a condition variable for ``wait``, integer versions as tokens, and TTLs
against ``time.monotonic``. Adapters of several handlers in one process share
a :class:`MemorySpace` (pass the same ``space``), which lets tests run many
agents as threads. It is a real store for one process, not a mock of another.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import TYPE_CHECKING, Sequence

from rdzv_core.adapter import CONTRACT_VERSION, Capabilities, CasResult, StateStore, Token, Versioned

if TYPE_CHECKING:  # pragma: no cover
    from torch.distributed.elastic.rendezvous import RendezvousParameters

    from rdzv_core.settings import CoreSettings


class MemorySpace:
    """The shared state of in-memory adapters: keys, versions, expiries."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.data: dict[str, tuple[bytes, int, float | None]] = {}
        self.versions = itertools.count(1)

    def live(self, key: str) -> tuple[bytes, int, float | None] | None:
        """The entry at ``key`` unless it is missing or expired (lock held)."""
        entry = self.data.get(key)
        if entry is not None and entry[2] is not None and entry[2] <= time.monotonic():
            del self.data[key]
            return None
        return entry


#: Spaces by name, so ``from_params`` can find a shared one by endpoint.
SPACES: dict[str, MemorySpace] = {}


class MemoryStateStore(StateStore):
    """Reference adapter over a :class:`MemorySpace` (one process only)."""

    name = "memory"
    contract_version = CONTRACT_VERSION
    capabilities = Capabilities(wait=True, list_keys=True, ttl=True)

    def __init__(self, space: MemorySpace, run_id: str, label: str = "memory") -> None:
        self._space = space
        self._prefix = f"{run_id}/"
        self._label = label

    @classmethod
    def from_params(cls, params: RendezvousParameters, core: CoreSettings) -> MemoryStateStore:
        """Use (or create) the space named by the endpoint."""
        label = (core.endpoint or "default").strip()
        return cls(SPACES.setdefault(label, MemorySpace()), core.run_id, f"memory:{label}")

    @property
    def endpoint(self) -> str:
        """See base class."""
        return self._label

    def _k(self, key: str) -> str:
        return self._prefix + key

    def read(self, key: str) -> Versioned | None:
        """See base class."""
        with self._space.lock:
            entry = self._space.live(self._k(key))
        return None if entry is None else Versioned(entry[0], entry[1])

    def cas(self, key: str, token: Token | None, value: bytes) -> CasResult:
        """See base class."""
        space = self._space
        with space.lock:
            entry = space.live(self._k(key))
            current = None if entry is None else entry[1]
            if current != token:
                return CasResult(None, None, False) if entry is None else CasResult(entry[0], entry[1], False)
            version = next(space.versions)
            space.data[self._k(key)] = (value, version, entry[2] if entry else None)
            space.lock.notify_all()
        return CasResult(value, version, True)

    def write(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """See base class."""
        with self._space.lock:
            expiry = None if ttl is None else time.monotonic() + ttl
            self._space.data[self._k(key)] = (value, next(self._space.versions), expiry)
            self._space.lock.notify_all()

    def add(self, key: str, amount: int) -> int:
        """See base class."""
        with self._space.lock:
            entry = self._space.live(self._k(key))
            total = (int(entry[0]) if entry else 0) + amount
            expiry = entry[2] if entry else None
            self._space.data[self._k(key)] = (str(total).encode(), next(self._space.versions), expiry)
            self._space.lock.notify_all()
        return total

    def delete(self, key: str) -> bool:
        """See base class."""
        with self._space.lock:
            existed = self._space.live(self._k(key)) is not None
            self._space.data.pop(self._k(key), None)
        return existed

    def count(self, prefix: str) -> int:
        """See base class."""
        full = self._k(prefix)
        with self._space.lock:
            return sum(1 for key in list(self._space.data) if key.startswith(full) and self._space.live(key))

    def list_keys(self, prefix: str = "") -> list[str]:
        """See base class (the default ``purge`` deletes these one by one)."""
        full = self._k(prefix)
        with self._space.lock:
            return sorted(key[len(self._prefix):] for key in list(self._space.data)
                          if key.startswith(full) and self._space.live(key))

    def wait(self, keys: Sequence[str], timeout: float) -> bool:
        """See base class: sleeps on a condition variable, no polling."""
        deadline = time.monotonic() + timeout
        full = [self._k(k) for k in keys]
        with self._space.lock:
            while not all(self._space.live(k) is not None for k in full):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._space.lock.wait(remaining)
        return True
