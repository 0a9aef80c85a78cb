"""Deterministic fault injection around a real adapter.

:class:`FaultyStore` delegates every primitive to a real adapter (talking to
a real store) and, on a fixed schedule, raises
:class:`~rdzv_core.errors.TransientStoreError` either *before* the call
(nothing reached the store) or *after* it (the store applied it but the reply
was "lost"). The second kind is what the core's CAS settling must survive
without losing or doubling a write.

:class:`OutageStore` makes the store as a whole go away on demand: *frozen*
(every call blocks until thawed, as a server stopped with SIGSTOP) or *down*
(every call fails at once with ``ConnectionRefusedError``, as a stopped
server). Keys written with a TTL keep expiring meanwhile, as they do in a
frozen Redis or etcd.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Sequence

from rdzv_core.adapter import CONTRACT_VERSION, Capabilities, CasResult, StateStore, Token, Versioned
from rdzv_core.errors import TransientStoreError


class WrappedStore(StateStore):
    """Delegates every primitive of ``inner`` through :meth:`_call`, which
    subclasses override to inject their faults."""

    name = "wrapped"
    contract_version = CONTRACT_VERSION
    capabilities = Capabilities(read_many=True, wait=True, increment=True)

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.retryable_errors = inner.retryable_errors
        self.client_errors = inner.client_errors

    @classmethod
    def from_params(cls, params: Any, core: Any) -> StateStore:  # pragma: no cover - built directly
        """Not constructed from parameters: wrap an adapter instead."""
        raise NotImplementedError(f"wrap an adapter: {cls.__name__}(inner)")

    @property
    def endpoint(self) -> str:
        """The wrapped adapter's endpoint."""
        return f"{self.inner.endpoint} (with injected faults)"

    def _call(self, operation: str, call: Any) -> Any:
        return call()

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

    def increment(self, key: str) -> int:
        """Delegated, with faults like ``add``."""
        return self._call("add", lambda: self.inner.increment(key))

    def delete(self, key: str) -> bool:
        """Delegated, with faults."""
        return self._call("delete", lambda: self.inner.delete(key))

    def count(self, prefix: str) -> int:
        """Delegated, with faults."""
        return self._call("count", lambda: self.inner.count(prefix))

    def wait(self, keys: Sequence[str], timeout: float) -> bool:
        """Delegated, with faults."""
        return self._call("wait", lambda: self.inner.wait(keys, timeout))

    def close(self) -> None:
        """Close the wrapped adapter."""
        self.inner.close()


class FaultyStore(WrappedStore):
    """Wraps ``inner``; every ``every``-th call of a faulted operation fails.

    Failures alternate between "before" and "after" the real call. ``wait``
    is never faulted.
    """

    name = "faulty"

    def __init__(self, inner: StateStore, every: int = 3, operations: Sequence[str] = ("cas", "read", "write")) -> None:
        super().__init__(inner)
        self.every = every
        self.operations = frozenset(operations) - {"wait"}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self.injected_before = 0
        self.injected_after = 0

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


class OutageStore(WrappedStore):
    """Wraps ``inner``; :meth:`freeze` and :meth:`take_down` make the store go
    away (see the module docstring) until :meth:`restore`."""

    name = "outage"

    def __init__(self, inner: StateStore) -> None:
        super().__init__(inner)
        self._running = threading.Event()
        self._running.set()
        self._down = False
        #: Calls made while the store was frozen or down.
        self.refused = 0

    def freeze(self) -> None:
        """Every call from now on blocks until :meth:`restore`."""
        self._running.clear()

    def take_down(self) -> None:
        """Every call from now on fails with ``ConnectionRefusedError``."""
        self._down = True

    def restore(self) -> None:
        """The store answers again (blocked calls go on)."""
        self._down = False
        self._running.set()

    def _call(self, operation: str, call: Any) -> Any:
        if self._down or not self._running.is_set():
            self.refused += 1
        if self._down:
            raise ConnectionRefusedError(f"injected outage: {operation} refused")
        self._running.wait()
        return call()
