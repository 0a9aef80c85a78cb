"""A ``torch.distributed.Store`` built from any adapter's primitives.

torch's elastic agent uses the rendezvous Store (through a ``PrefixStore``)
to publish MASTER_ADDR/PORT, assign worker ranks and run barriers. This
bridge gives it exactly the semantics of torch's TCPStore: ``get`` blocks
until the key exists or the store timeout passes, ``compare_set`` compares
values (a missing key with expected ``""`` is created), counters written by
``add`` read back as ASCII decimals.

The C++ side (``PrefixStore`` and the process-group code) calls the C++
method names ``deleteKey`` and ``getNumKeys``; Python callers use
``delete_key``/``num_keys``. Both spellings are implemented.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Sequence

import torch.distributed as dist

from rdzv_core.adapter import Versioned
from rdzv_core.guarded import GuardedStore, StoreFailure

#: All Store keys live under this adapter-key prefix, apart from rdzv's own.
STORE_PREFIX = "kv/"


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return bytes(value)  # list[int] / bytearray from the C++ side


def store_error(failure: StoreFailure) -> Exception:
    """Map a store failure to torch's Store-side error type."""
    if failure.timed_out or failure.outcome_unknown or failure.cause is not None:
        return dist.DistNetworkError(str(failure))
    return dist.DistStoreError(str(failure))


class BridgeStore(dist.Store):
    """A c10d Store over an rdzv adapter (Redis, etcd, third-party stores).

    Its keys live under the adapter key ``prefix`` (``kv/`` for the
    rendezvous; ``init_method`` stores use one of their own).
    """

    def __init__(self, store: GuardedStore, timeout: timedelta, prefix: str = STORE_PREFIX) -> None:
        super().__init__()
        self._store = store
        self._prefix = prefix
        self.set_timeout(timeout)

    # -- helpers --------------------------------------------------------------

    def _key(self, key: str) -> str:
        return self._prefix + key

    def _wait_timeout(self, timeout: timedelta | None) -> float:
        chosen = self.timeout if timeout is None else timeout
        seconds = chosen.total_seconds()
        # torch treats a zero timeout as "no timeout"; bound it by a day.
        return seconds if seconds > 0 else 86400.0

    def _timeout_error(self, keys: Sequence[str], seconds: float) -> Exception:
        return dist.DistStoreError(
            f"rdzv backend '{self._store.backend_name}' at {self._store.adapter.endpoint}: "
            f"wait timeout after {seconds * 1000:.0f}ms, keys: {', '.join(keys)}"
        )

    def _guard(self, call):  # type: ignore[no-untyped-def]
        try:
            return call()
        except StoreFailure as failure:
            raise store_error(failure) from failure

    def _read_blocking(self, keys: Sequence[str]) -> list[bytes]:
        seconds = self._wait_timeout(None)
        full = [self._key(k) for k in keys]
        values = self._store.read_many(full)
        if all(v is not None for v in values):
            return values  # type: ignore[return-value]
        if not self._store.wait(full, seconds):
            raise self._timeout_error(keys, seconds)
        values = self._store.read_many(full)
        if any(v is None for v in values):  # deleted between wait and read
            raise self._timeout_error(keys, seconds)
        return values  # type: ignore[return-value]

    # -- the Store API ----------------------------------------------------------

    def set(self, key: str, value: object) -> None:
        """Set ``key`` to ``value``."""
        self._guard(lambda: self._store.write(self._key(key), _as_bytes(value)))

    def get(self, key: str) -> bytes:
        """Return ``key``'s value, waiting up to the store timeout for it."""
        return self._guard(lambda: self._read_blocking([key]))[0]

    def add(self, key: str, amount: int) -> int:
        """Atomically add ``amount`` to the counter ``key``; return the sum."""
        return self._guard(lambda: self._store.add(self._key(key), int(amount)))

    def compare_set(self, key: str, expected: object, desired: object) -> bytes:
        """Set ``key`` to ``desired`` if it holds ``expected``; return the value now.

        A missing key with ``expected == b""`` is created; a missing key with
        any other ``expected`` is left missing and ``expected`` is returned
        (TCPStore does the same).
        """
        want, new = _as_bytes(expected), _as_bytes(desired)
        full = self._key(key)

        def attempt() -> bytes:
            deadline = self._store.deadline()
            while True:
                current = self._store.read(full, deadline)
                if current is None and want != b"":
                    return want
                if current is not None and current.value != want:
                    return current.value
                token = None if current is None else current.token
                result = self._store.cas(full, token, new, lambda cur: _holds(cur, new), deadline)
                if result.applied:
                    return new
                if deadline.expired():
                    raise self._store.failure("compare_set", full, "contention did not settle", timed_out=True)

        return self._guard(attempt)

    def append(self, key: str, value: object) -> None:
        """Append ``value`` to ``key`` (creating it)."""
        tail = _as_bytes(value)
        full = self._key(key)

        def attempt() -> None:
            deadline = self._store.deadline()
            while not deadline.expired():
                current = self._store.read(full, deadline)
                token = None if current is None else current.token
                new = (b"" if current is None else current.value) + tail
                # A settled append must be ours: match both the value and that
                # the version moved past the one we appended to.
                result = self._store.cas(full, token, new, lambda cur: _holds(cur, new) and cur.token != token, deadline)
                if result.applied:
                    return
            raise self._store.failure("append", full, "contention did not settle", timed_out=True)

        self._guard(attempt)

    def check(self, keys: list[str]) -> bool:
        """Whether all ``keys`` exist, without waiting."""
        values = self._guard(lambda: self._store.read_many([self._key(k) for k in keys]))
        return all(v is not None for v in values)

    def wait(self, keys: list[str], timeout: timedelta | None = None) -> None:
        """Block until all ``keys`` exist, or raise after ``timeout``."""
        seconds = self._wait_timeout(timeout)
        if not self._guard(lambda: self._store.wait([self._key(k) for k in keys], seconds)):
            raise self._timeout_error(keys, seconds)

    def deleteKey(self, key: str) -> bool:  # noqa: N802 - the C++ method name
        """Delete ``key``; return whether it existed."""
        return self._guard(lambda: self._store.delete(self._key(key)))

    def delete_key(self, key: str) -> bool:
        """Delete ``key``; return whether it existed."""
        return self.deleteKey(key)

    def getNumKeys(self) -> int:  # noqa: N802 - the C++ method name
        """The number of Store keys of this run."""
        return self._guard(lambda: self._store.count(self._prefix))

    def num_keys(self) -> int:
        """The number of Store keys of this run."""
        return self.getNumKeys()

    def multi_get(self, keys: list[str]) -> list[bytes]:
        """Values of ``keys``, waiting up to the store timeout for all of them."""
        return self._guard(lambda: self._read_blocking(keys))

    def multi_set(self, keys: list[str], values: list[object]) -> None:
        """Set each key to its value."""
        if len(keys) != len(values):
            raise ValueError(f"multi_set got {len(keys)} keys but {len(values)} values")
        for key, value in zip(keys, values):
            self.set(key, value)

    def has_extended_api(self) -> bool:
        """The bridge implements the extended API (append, multi_get, multi_set)."""
        return True


def _holds(current: Versioned | None, value: bytes) -> bool:
    return current is not None and current.value == value
