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
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from rdzv_core.adapter import CasResult, StateStore, Token, Versioned
from rdzv_core.retry import Backoff, Deadline

if TYPE_CHECKING:  # pragma: no cover
    from rdzv_core.metrics import RdzvMetrics

T = TypeVar("T")

#: Bumped in every child process that ``os.fork()`` creates. Each store
#: compares it with the value it last saw instead of calling ``getpid()`` (a
#: system call) on every operation.
_forks = [0]


def _count_fork() -> None:
    _forks[0] += 1


os.register_at_fork(after_in_child=_count_fork)


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
    """An adapter plus retry, deadlines and error classification.

    Every operation first calls the adapter directly inside a plain ``try``:
    the common case (success at the first attempt) creates no deadline,
    backoff or closure. Only a failure enters the retry loop, with a deadline
    counted from the start of the first attempt.
    """

    def __init__(
        self,
        adapter: StateStore,
        backend_name: str,
        read_timeout: float,
        metrics: RdzvMetrics | None = None,
    ) -> None:
        self.adapter = adapter
        #: Where operations are counted (``None``: nowhere). With metrics, the
        #: instance's ``_call`` and ``cas`` are measured wrappers of the class's;
        #: without, the class's own run and a call costs nothing more.
        self.metrics = metrics
        if metrics is not None:
            self._call = self._measured_call  # type: ignore[method-assign]
            self.cas = self._measured_cas  # type: ignore[method-assign]
        self.backend_name = backend_name
        self.read_timeout = read_timeout
        self._unsent_errors = adapter.unsent_errors
        self._retryable: tuple[type[BaseException], ...] = (
            ConnectionError,
            TimeoutError,
            *adapter.retryable_errors,
        )
        self._forks_seen = _forks[0]
        self._pid = os.getpid()

    # -- plumbing ---------------------------------------------------------------

    def failure(self, operation: str, key: str | None, reason: str, **kw: object) -> StoreFailure:
        """Build a failure of ``operation`` that names this store."""
        return StoreFailure(self.backend_name, self.adapter.endpoint, operation, key, reason, **kw)  # type: ignore[arg-type]

    def _check_fork(self) -> None:
        if self._forks_seen != _forks[0]:
            self._forks_seen = _forks[0]
            pid = os.getpid()
            if pid != self._pid:
                self._pid = pid
                self.adapter.after_fork()

    def _is_retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, self._retryable)

    def _is_unsent(self, exc: BaseException) -> bool:
        return isinstance(exc, self._unsent_errors)

    def _is_client_error(self, exc: BaseException) -> bool:
        return isinstance(exc, (OSError, *self.adapter.client_errors))

    def _give_up(self, operation: str, key: str | None, exc: Exception, retryable: bool) -> None:
        """Raise the failure for an error that will not be retried (or ``exc`` itself)."""
        if retryable:
            raise self.failure(
                operation, key, f"the outcome is unknown after {type(exc).__name__}: {exc}",
                outcome_unknown=True, cause=exc,
            ) from exc
        if self._is_client_error(exc):
            raise self.failure(operation, key, f"{type(exc).__name__}: {exc}", cause=exc) from exc
        raise exc

    def _call(
        self,
        operation: str,
        key: str | None,
        call: Callable[..., T],
        args: tuple[Any, ...],
        deadline: Deadline | None,
        retry_if: Callable[[BaseException], bool] | None = None,
    ) -> T:
        """``call(*args)``: at once, then retried until success, a permanent error, or the deadline."""
        if self._forks_seen != _forks[0]:
            self._check_fork()
        started = time.monotonic()
        try:
            return call(*args)
        except Exception as exc:  # noqa: BLE001 - classified in _retry
            first = exc
        return self._retry(operation, key, lambda: call(*args), first,
                           deadline or Deadline(self.read_timeout, started), retry_if or self._is_retryable)

    def _measured_call(self, operation: str, key: str | None, call: Callable[..., T], args: tuple[Any, ...],
                       deadline: Deadline | None, retry_if: Callable[[BaseException], bool] | None = None) -> T:
        """:meth:`_call`, timed and counted in :attr:`metrics`."""
        return self._measured(operation, lambda: GuardedStore._call(self, operation, key, call, args, deadline,
                                                                    retry_if))

    def _measured_cas(self, key: str, token: Token | None, value: bytes, landed: Callable[[Versioned | None], bool],
                      deadline: Deadline | None = None) -> CasResult:
        """:meth:`cas`, timed and counted in :attr:`metrics`."""
        return self._measured("cas", lambda: GuardedStore.cas(self, key, token, value, landed, deadline))

    def _measured(self, operation: str, run: Callable[[], T]) -> T:
        metrics = self.metrics
        assert metrics is not None
        started = time.perf_counter()
        try:
            return run()
        except Exception:
            metrics.failed(operation)
            raise
        finally:
            metrics.observe(operation, time.perf_counter() - started)

    def _retry(
        self,
        operation: str,
        key: str | None,
        call: Callable[[], T],
        exc: Exception,
        deadline: Deadline,
        retry_if: Callable[[BaseException], bool],
    ) -> T:
        """The slow path after ``call`` failed with ``exc``."""
        backoff = Backoff(initial=0.02, maximum=1.0)
        while True:
            if not retry_if(exc):
                self._give_up(operation, key, exc, self._is_retryable(exc))
            if self.metrics is not None:
                self.metrics.retried(operation)
            if not deadline.sleep(backoff.next_delay()):
                raise self.failure(
                    operation, key,
                    f"gave up after {backoff.attempts} attempts in {deadline.elapsed():.1f} s "
                    f"(deadline {deadline.seconds:g} s); last error: {type(exc).__name__}: {exc}",
                    timed_out=True, cause=exc,
                ) from exc
            self._check_fork()
            try:
                return call()
            except Exception as again:  # noqa: BLE001 - classified above
                exc = again

    def deadline(self, seconds: float | None = None) -> Deadline:
        """A deadline of ``seconds`` (default: ``read_timeout``) from now."""
        return Deadline(self.read_timeout if seconds is None else seconds)

    # -- operations ---------------------------------------------------------------

    def read(self, key: str, deadline: Deadline | None = None) -> Versioned | None:
        """Read ``key`` (retried)."""
        return self._call("read", key, self.adapter.read, (key,), deadline)

    def read_many(self, keys: Sequence[str], deadline: Deadline | None = None) -> list[bytes | None]:
        """Read several keys (retried)."""
        first = keys[0] if keys else None
        return self._call("read", first, self.adapter.read_many, (keys,), deadline)

    def write(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Write ``key`` (retried: writing the same value twice is harmless)."""
        self._call("write", key, self.adapter.write, (key, value, ttl), None)

    def delete(self, key: str) -> bool:
        """Delete ``key`` (retried)."""
        return self._call("delete", key, self.adapter.delete, (key,), None)

    def count(self, prefix: str) -> int:
        """Count the run's keys under ``prefix`` (retried)."""
        return self._call("count", prefix, self.adapter.count, (prefix,), None)

    def wait(self, keys: Sequence[str], timeout: float) -> bool:
        """Wait up to ``timeout`` s for ``keys`` to exist; retried within it."""
        deadline = Deadline(timeout)
        first = keys[0] if keys else None
        adapter = self.adapter
        return self._call(
            "wait", first, lambda: adapter.wait(keys, max(deadline.remaining(), 0.001)), (), deadline
        )

    def wait_read(self, key: str, timeout: float) -> bytes | None:
        """Wait up to ``timeout`` s for ``key``; its value, or ``None`` if it
        did not appear in time. Retried for ``timeout`` plus ``read_timeout``
        (a wait followed by a read): a failure after the wait ended is
        retried as a plain check, like a ``read`` would be."""
        waiting = Deadline(timeout)
        adapter = self.adapter
        return self._call(
            "wait", key, lambda: adapter.wait_read(key, max(waiting.remaining(), 0.001)), (),
            Deadline(timeout + self.read_timeout),
        )

    def exists(self, keys: Sequence[str]) -> bool:
        """Whether every key in ``keys`` exists: one non-blocking check (retried)."""
        first = keys[0] if keys else None
        return self._call("exists", first, self.adapter.wait, (keys, 0.0), None)

    def add(self, key: str, amount: int) -> int:
        """Atomically add to a counter; retried only where provably unsent."""
        return self._call("add", key, self.adapter.add, (key, amount), None, self._is_unsent)

    def increment(self, key: str) -> int:
        """Atomically add 1 to a counter; retried only where provably unsent (as ``add``)."""
        return self._call("add", key, self.adapter.increment, (key,), None, self._is_unsent)

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
        if self._forks_seen != _forks[0]:
            self._check_fork()
        started = time.monotonic()
        try:
            return self.adapter.cas(key, token, value)
        except Exception as exc:  # noqa: BLE001 - classified in _settle
            first = exc
        return self._settle(key, token, value, landed, first, deadline or Deadline(self.read_timeout, started))

    def _settle(
        self,
        key: str,
        token: Token | None,
        value: bytes,
        landed: Callable[[Versioned | None], bool],
        exc: Exception,
        deadline: Deadline,
    ) -> CasResult:
        """The slow path of :meth:`cas` after an attempt failed with ``exc``."""
        backoff = Backoff(initial=0.02, maximum=1.0)
        while True:
            if not self._is_retryable(exc):
                self._give_up("cas", key, exc, False)
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
            if self.metrics is not None:
                self.metrics.retried("cas")
            if not deadline.sleep(backoff.next_delay()):
                raise self.failure(
                    "cas", key,
                    f"gave up after {backoff.attempts} attempts in {deadline.elapsed():.1f} s; "
                    f"last error: {type(exc).__name__}: {exc}",
                    timed_out=True, cause=exc,
                ) from exc
            self._check_fork()
            try:
                return self.adapter.cas(key, token, value)
            except Exception as again:  # noqa: BLE001 - classified above
                exc = again
