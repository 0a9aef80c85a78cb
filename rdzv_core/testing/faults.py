"""Deterministic fault injection around a real adapter.

:class:`FaultyStore` delegates every primitive to a real adapter (talking to
a real store) and, on a fixed schedule, raises
:class:`~rdzv_core.errors.TransientStoreError` either *before* the call
(nothing reached the store) or *after* it (the store applied it but the reply
was "lost"). The second kind is what the core's CAS settling must survive
without losing or doubling a write.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Sequence

from rdzv_core.adapter import CasResult, StateStore, Token, Versioned
from rdzv_core.errors import TransientStoreError


class FaultyStore(StateStore):
    """Wraps ``inner``; every ``every``-th call of a faulted operation fails.

    Failures alternate between "before" and "after" the real call.
    """

    name = "faulty"

    def __init__(self, inner: StateStore, every: int = 3, operations: Sequence[str] = ("cas", "read", "write")) -> None:
        self.inner = inner
        self.every = every
        self.operations = frozenset(operations)
        self.retryable_errors = inner.retryable_errors
        self.client_errors = inner.client_errors
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self.injected_before = 0
        self.injected_after = 0

    @classmethod
    def from_params(cls, params: Any) -> StateStore:  # pragma: no cover - built directly
        """Not constructed from parameters: wrap an adapter instead."""
        raise NotImplementedError("wrap an adapter: FaultyStore(inner)")

    @property
    def endpoint(self) -> str:
        """The wrapped adapter's endpoint."""
        return f"{self.inner.endpoint} (with injected faults)"

    def _call(self, operation: str, call: Any) -> Any:
        if operation not in self.operations:
            return call()
        with self._lock:
            n = next(self._counter)
        if n % self.every:
            return call()
        if (n // self.every) % 2:
            with self._lock:
                self.injected_before += 1
            raise TransientStoreError(f"injected fault before {operation} #{n}")
        call()
        with self._lock:
            self.injected_after += 1
        raise TransientStoreError(f"injected fault after {operation} #{n} (the store applied it)")

    def read(self, key: str) -> Versioned | None:
        """Delegated, with faults."""
        return self._call("read", lambda: self.inner.read(key))

    def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Delegated as one call (one round trip), with faults like ``read``."""
        return self._call("read", lambda: self.inner.read_many(keys))

    def cas(self, key: str, token: Token | None, value: bytes) -> CasResult:
        """Delegated, with faults."""
        return self._call("cas", lambda: self.inner.cas(key, token, value))

    def write(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Delegated, with faults."""
        self._call("write", lambda: self.inner.write(key, value, ttl))

    def add(self, key: str, amount: int) -> int:
        """Delegated, with faults."""
        return self._call("add", lambda: self.inner.add(key, amount))

    def delete(self, key: str) -> bool:
        """Delegated, with faults."""
        return self._call("delete", lambda: self.inner.delete(key))

    def count(self, prefix: str) -> int:
        """Delegated, with faults."""
        return self._call("count", lambda: self.inner.count(prefix))

    def wait(self, keys: Sequence[str], timeout: float) -> bool:
        """Delegated (never faulted)."""
        return self.inner.wait(keys, timeout)

    def close(self) -> None:
        """Close the wrapped adapter."""
        self.inner.close()
