"""The adapter as the core uses it: retried, bounded, fork-aware.

:class:`GuardedStore` wraps one adapter. Every call gets a deadline
(``read_timeout`` unless the caller passes one). Transient failures are
retried with backoff until then; permanent ones fail at once. Either way the
caller sees one :class:`StoreFailure` that names the backend, the endpoint,
the operation and the key, which the rendezvous side and the Store side turn
into their own error types.

Retrying is only safe where repeating the call cannot apply it twice:

* ``read``, ``read_many``, ``write``, ``delete``, ``count``, ``wait``: always.
* ``cas``: a failure after the request may have been sent is *settled* by
  reading the key back and asking the caller's ``landed`` predicate whether
  the value there is (or descends from) ours; only a provably unapplied CAS
  is sent again.
* ``add``: retried only for errors the adapter declares (``unsent_errors``)
  as raised before anything was sent (``ConnectionRefusedError`` by
  default); otherwise the
  caller gets a failure that says the outcome is unknown.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

from rdzv_core.adapter import CasResult, StateStore, Token, Versioned
from rdzv_core.retry import Backoff, Deadline

T = TypeVar("T")


@dataclass
class StoreFailure(Exception):
    """A store operation that did not succeed within its deadline."""

    backend: str
    endpoint: str
    operation: str
    key: str | None
    reason: str
    timed_out: bool = False
    outcome_unknown: bool = False
    cause: BaseException | None = None

    def __str__(self) -> str:
        target = f" of key '{self.key}'" if self.key is not None else ""
        return (
            f"rdzv backend '{self.backend}' at {self.endpoint}: {self.operation}{target} failed: "
            f"{self.reason}"
        )


class GuardedStore:
    """An adapter plus retry, deadlines and error classification."""

    def __init__(
        self,
        adapter: StateStore,
        backend_name: str,
        read_timeout: float,
    ) -> None:
        self.adapter = adapter
        self.backend_name = backend_name
        self.read_timeout = read_timeout
        self._unsent_errors = adapter.unsent_errors
        self._retryable: tuple[type[BaseException], ...] = (
            ConnectionError,
            TimeoutError,
            *adapter.retryable_errors,
        )
        self._pid = os.getpid()

    # -- plumbing ---------------------------------------------------------------

    def failure(self, operation: str, key: str | None, reason: str, **kw: object) -> StoreFailure:
        """Build a failure of ``operation`` that names this store."""
        return StoreFailure(self.backend_name, self.adapter.endpoint, operation, key, reason, **kw)  # type: ignore[arg-type]

    def _check_fork(self) -> None:
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            self.adapter.after_fork()

    def _is_retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, self._retryable)

    def _is_client_error(self, exc: BaseException) -> bool:
        return isinstance(exc, (OSError, *self.adapter.client_errors))

    def _retrying(
        self,
        operation: str,
        key: str | None,
        call: Callable[[], T],
        deadline: Deadline,
        retry_if: Callable[[BaseException], bool] | None = None,
    ) -> T:
        """Run ``call`` until it succeeds, fails permanently, or time is up."""
        self._check_fork()
        retry_if = retry_if or self._is_retryable
        backoff = Backoff(initial=0.02, maximum=1.0)
        while True:
            try:
                return call()
            except Exception as exc:  # noqa: BLE001 - classified below
                if not retry_if(exc):
                    if self._is_retryable(exc):
                        raise self.failure(
                            operation, key, f"the outcome is unknown after {type(exc).__name__}: {exc}",
                            outcome_unknown=True, cause=exc,
                        ) from exc
                    if self._is_client_error(exc):
                        raise self.failure(operation, key, f"{type(exc).__name__}: {exc}", cause=exc) from exc
                    raise
                if not deadline.sleep(backoff.next_delay()):
                    raise self.failure(
                        operation, key,
                        f"gave up after {backoff.attempts} attempts in {deadline.elapsed():.1f} s "
                        f"(deadline {deadline.seconds:g} s); last error: {type(exc).__name__}: {exc}",
                        timed_out=True, cause=exc,
                    ) from exc

    def deadline(self, seconds: float | None = None) -> Deadline:
        """A deadline of ``seconds`` (default: ``read_timeout``) from now."""
        return Deadline(self.read_timeout if seconds is None else seconds)

    # -- operations ---------------------------------------------------------------

    def read(self, key: str, deadline: Deadline | None = None) -> Versioned | None:
        """Read ``key`` (retried)."""
        return self._retrying("read", key, lambda: self.adapter.read(key), deadline or self.deadline())

    def read_many(self, keys: Sequence[str], deadline: Deadline | None = None) -> list[bytes | None]:
        """Read several keys (retried)."""
        first = keys[0] if keys else None
        return self._retrying("read", first, lambda: self.adapter.read_many(keys), deadline or self.deadline())

    def write(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Write ``key`` (retried: writing the same value twice is harmless)."""
        self._retrying("write", key, lambda: self.adapter.write(key, value, ttl), self.deadline())

    def delete(self, key: str) -> bool:
        """Delete ``key`` (retried)."""
        return self._retrying("delete", key, lambda: self.adapter.delete(key), self.deadline())

    def count(self, prefix: str) -> int:
        """Count the run's keys under ``prefix`` (retried)."""
        return self._retrying("count", prefix, lambda: self.adapter.count(prefix), self.deadline())

    def wait(self, keys: Sequence[str], timeout: float) -> bool:
        """Wait up to ``timeout`` s for ``keys`` to exist; retried within it."""
        deadline = Deadline(timeout)
        first = keys[0] if keys else None
        return self._retrying(
            "wait", first, lambda: self.adapter.wait(keys, max(deadline.remaining(), 0.001)), deadline
        )

    def add(self, key: str, amount: int) -> int:
        """Atomically add to a counter; retried only where provably unsent."""
        return self._retrying(
            "add", key, lambda: self.adapter.add(key, amount), self.deadline(),
            retry_if=lambda exc: isinstance(exc, self._unsent_errors),
        )

    def cas(
        self,
        key: str,
        token: Token | None,
        value: bytes,
        landed: Callable[[Versioned | None], bool],
        deadline: Deadline | None = None,
    ) -> CasResult:
        """Compare-and-swap that settles lost replies instead of guessing.

        ``landed(current)`` must say whether ``current`` proves that our
        write was applied (it is our value, or was built on top of it).
        """
        deadline = deadline or self.deadline()
        self._check_fork()
        backoff = Backoff(initial=0.02, maximum=1.0)
        while True:
            try:
                return self.adapter.cas(key, token, value)
            except Exception as exc:  # noqa: BLE001 - classified below
                if not self._is_retryable(exc):
                    if self._is_client_error(exc):
                        raise self.failure("cas", key, f"{type(exc).__name__}: {exc}", cause=exc) from exc
                    raise
                last = exc
            # Settle at once: the sooner we read back, the fewer writes can have
            # been stacked on top of ours in the meantime.
            current = self.read(key, deadline)
            if landed(current):
                assert current is not None
                return CasResult(current.value, current.token, True)
            unchanged = (current is None) if token is None else (current is not None and current.token == token)
            if not unchanged:
                if current is None:
                    return CasResult(None, None, False)
                return CasResult(current.value, current.token, False)
            # The key is exactly as before our attempt: it did not land; send it again.
            if not deadline.sleep(backoff.next_delay()):
                raise self.failure(
                    "cas", key,
                    f"gave up after {backoff.attempts} attempts in {deadline.elapsed():.1f} s; "
                    f"last error: {type(last).__name__}: {last}",
                    timed_out=True, cause=last,
                ) from last
