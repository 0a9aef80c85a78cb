"""The measuring instruments: one for torch's c10d backend, one for rdzv.

* :class:`CountingStore` sits between torch's ``C10dRendezvousBackend`` and
  its TCPStore client and counts every ``Store`` call.
* :func:`counting_adapter` subclasses an rdzv adapter class so that every
  primitive call (``read``, ``cas``, ``write``, ...) is counted; a registry
  holding the subclass makes the core (and any protocol built on the
  adapter primitives) create counted adapters.

Both feed :class:`~benchmarks.counters.StoreCounters` with the same rules:
one count per client call that reaches the store, payload bytes = values
and version tokens sent, values returned.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from benchmarks.counters import StoreCounters

_REGISTRY: Any = None


def base_registry() -> Any:
    """The process's registry of installed adapters (loaded once)."""
    global _REGISTRY
    if _REGISTRY is None:
        from rdzv_core.plugins import load_registry

        _REGISTRY = load_registry()
    return _REGISTRY


def _size(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, int):
        return 8
    return len(bytes(value))  # type: ignore[call-overload]


class CountingStore:
    """A transparent proxy over a ``torch.distributed.Store`` that counts calls.

    Given to torch's ``C10dRendezvousBackend`` (which only calls ``get`` and
    ``compare_set``); the handler itself keeps the real store.
    """

    def __init__(self, store: Any, counters: StoreCounters) -> None:
        self._store = store
        self._counters = counters

    def get(self, key: str) -> bytes:
        value = self._store.get(key)
        self._counters.op("read", received=_size(value))
        return value

    def compare_set(self, key: str, expected: Any, desired: Any) -> bytes:
        value = self._store.compare_set(key, expected, desired)
        lost = _size(value) != _size(desired) or bytes(value) != (desired.encode() if isinstance(desired, str) else bytes(desired))
        self._counters.op("cas", sent=_size(expected) + _size(desired), received=_size(value), lost=lost)
        return value

    def set(self, key: str, value: Any) -> None:
        self._store.set(key, value)
        self._counters.op("write", sent=_size(value))

    def add(self, key: str, amount: int) -> int:
        result = self._store.add(key, amount)
        self._counters.op("add", sent=8, received=8)
        return result

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            self._counters.op("other")
            return result

        return counted


class _Leaf(threading.local):
    """Per-thread stack of counted calls: only the innermost one is recorded
    (a generic ``read_many`` made of ``read`` calls counts as those reads)."""

    def __init__(self) -> None:
        self.stack: list[list[bool]] = []


def counting_adapter(base: type, counters: StoreCounters, instances: Any,
                     tcp_client: Callable[[], Any] | None = None) -> type:
    """A subclass of adapter class ``base`` that counts its primitives.

    Every instance created is appended to ``instances`` (so a benchmark can
    close them all). c10d's ``compare_set`` returns the value even when it
    applies, so a won CAS counts the value as received there; Redis and etcd
    send nothing back on success. With ``tcp_client`` (c10d over TCP only),
    each adapter takes an already connected TCPStore client from it instead
    of connecting (see :mod:`benchmarks.tcp_pool`).
    """
    echoes = getattr(base, "name", "") == "c10d"
    leaf = _Leaf()

    def measured(kind: str, call: Callable[[], Any], sizes: Callable[[Any], tuple[int, int, bool]]) -> Any:
        frame = [False]
        if leaf.stack:
            leaf.stack[-1][0] = True
        leaf.stack.append(frame)
        try:
            result = call()
        finally:
            leaf.stack.pop()
        if not frame[0]:
            sent, received, lost = sizes(result)
            counters.op(kind, sent, received, lost)
        return result

    class Counting(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            instances.append(self)

        @classmethod
        def from_params(cls, params: Any, core: Any) -> Any:
            if tcp_client is None or core.conf.choice("store_type", ("tcp", "file"), "tcp") != "tcp":
                return super().from_params(params, core)
            store = tcp_client()
            # C10dStateStore(store, run_id, endpoint description, reopen).
            return cls(store, core.run_id, f"tcp {core.endpoint}", lambda: store)

        def read(self, key: str) -> Any:
            return measured("read", lambda: super(Counting, self).read(key),
                            lambda r: (0, 0 if r is None else _size(r.value), False))

        def read_many(self, keys: Any) -> Any:
            return measured("read", lambda: super(Counting, self).read_many(keys),
                            lambda vs: (0, sum(_size(v) for v in vs), False))

        def cas(self, key: str, token: Any, value: bytes) -> Any:
            def sizes(r: Any) -> tuple[int, int, bool]:
                back = _size(r.value) if (echoes or not r.applied) else 0
                return _size(value) + _size(token), back, not r.applied

            return measured("cas", lambda: super(Counting, self).cas(key, token, value), sizes)

        def write(self, key: str, value: bytes, ttl: float | None = None) -> None:
            return measured("write", lambda: super(Counting, self).write(key, value, ttl), lambda _: (_size(value), 0, False))

        def add(self, key: str, amount: int) -> int:
            return measured("add", lambda: super(Counting, self).add(key, amount), lambda _: (8, 8, False))

        def delete(self, key: str) -> bool:
            return measured("other", lambda: super(Counting, self).delete(key), lambda _: (0, 0, False))

        def count(self, prefix: str) -> int:
            return measured("other", lambda: super(Counting, self).count(prefix), lambda _: (0, 8, False))

        def wait(self, keys: Any, timeout: float) -> bool:
            return measured("wait", lambda: super(Counting, self).wait(keys, timeout), lambda _: (0, 0, False))

        def wait_read(self, key: str, timeout: float) -> Any:
            return measured("wait", lambda: super(Counting, self).wait_read(key, timeout),
                            lambda r: (0, 0 if r is None else _size(r), False))

    Counting.__name__ = Counting.__qualname__ = f"Counting{base.__name__}"
    return Counting


def counting_registry(backend: str, counters: StoreCounters, instances: Any,
                      tcp_client: Callable[[], Any] | None = None) -> Any:
    """A registry whose only adapter is the counted version of ``backend``'s."""
    from rdzv_core.plugins import AdapterInfo, BackendRegistry, adapter_name

    registry = base_registry()
    base = registry.get(backend)
    name = adapter_name(backend)
    info = registry.adapters[name]
    counted = counting_adapter(base, counters, instances, tcp_client if name == "c10d" else None)
    return BackendRegistry(adapters={name: AdapterInfo(name, counted, info.distribution, info.version)})
