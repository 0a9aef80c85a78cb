"""Deadlines, exponential backoff with jitter, and the retry loops built on them.

Pure helpers with no store or torch knowledge; :mod:`rdzv_core.guarded`
combines them with an adapter's error classification, and adapters whose
store can make an ``add`` idempotent retry it with :func:`apply_once`.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

T = TypeVar("T")


class Backoff:
    """Exponential backoff with "equal jitter".

    Each call to :meth:`next_delay` returns a random delay in
    ``[c/2, c]`` with ``c = min(maximum, initial * 2**attempt)``: competing
    retriers spread out instead of colliding again in lock-step, and no delay
    is ever near zero (which would turn a poll loop into a busy loop).
    """

    def __init__(self, initial: float = 0.01, maximum: float = 1.0) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(f"invalid backoff: initial={initial}, maximum={maximum}")
        self._initial = initial
        self._maximum = maximum
        self._attempt = 0

    def next_delay(self) -> float:
        """Return the next delay in seconds and advance the attempt count."""
        ceiling = min(self._maximum, self._initial * (2 ** min(self._attempt, 30)))
        self._attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    @property
    def attempts(self) -> int:
        """How many delays have been handed out."""
        return self._attempt


@dataclass
class Deadline:
    """A point in monotonic time by which an operation must finish."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    @property
    def at(self) -> float:
        """The monotonic timestamp of the deadline."""
        return self.started + self.seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self.at

    def elapsed(self) -> float:
        """Seconds since the operation started."""
        return time.monotonic() - self.started

    def sleep(self, delay: float) -> bool:
        """Sleep ``delay`` seconds, cut short at the deadline.

        Returns whether there is time left afterwards.
        """
        time.sleep(min(delay, self.remaining()))
        return not self.expired()


def poll_until(ready: Callable[[], bool], timeout: float, check_first: bool = True) -> bool:
    """Call ``ready()`` until it returns ``True`` (then ``True``) or ``timeout``
    seconds pass (then ``False``), sleeping 5 ms doubling to 200 ms (with
    jitter) in between. ``check_first=False``: the caller has just checked,
    so sleep before the first call."""
    return poll_for(lambda: True if ready() else None, timeout, check_first) is not None


def poll_for(check: Callable[[], T | None], timeout: float, check_first: bool = True) -> T | None:
    """Like :func:`poll_until`, for a ``check()`` that returns a result once
    ready and ``None`` before: the first result, or ``None`` after ``timeout``."""
    end = time.monotonic() + timeout
    backoff = Backoff(initial=0.005, maximum=0.2)
    if check_first:
        result = check()
        if result is not None:
            return result
    while True:
        remaining = end - time.monotonic()
        if remaining <= 0:
            return None
        time.sleep(min(backoff.next_delay(), remaining))
        result = check()
        if result is not None:
            return result


class GaveUp(Exception):
    """:func:`retry_transient` ran out of time; ``last`` is the last error."""

    def __init__(self, last: Exception, attempts: int, elapsed: float) -> None:
        super().__init__(f"gave up after {attempts} attempts in {elapsed:.1f} s: {type(last).__name__}: {last}")
        self.last = last
        self.attempts = attempts
        self.elapsed = elapsed


def retry_transient(
    call: Callable[[], T],
    deadline: Deadline,
    transient: Callable[[Exception], bool],
    on_retry: Callable[[Exception, int], None] | None = None,
    backoff: Backoff | None = None,
) -> T:
    """``call()``, called again after every error that ``transient`` accepts
    until it returns or ``deadline`` passes; any other error is raised at once.

    Between attempts it sleeps ``backoff`` (default: 50 ms doubling to 1 s,
    with jitter), cut short at the deadline, and no attempt starts after it:
    then :class:`GaveUp` is raised from the last error. ``on_retry(error,
    attempts so far)`` is called before each sleep.
    """
    backoff = backoff or Backoff(initial=0.05, maximum=1.0)
    attempts = 0
    while True:
        attempts += 1
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - classified by ``transient``
            if not transient(exc):
                raise
            if on_retry is not None:
                on_retry(exc, attempts)
            if not deadline.sleep(backoff.next_delay()):
                raise GaveUp(exc, attempts, deadline.elapsed()) from exc


def new_op_id() -> str:
    """A fresh random operation id (24 hex digits) for :func:`apply_once`."""
    return os.urandom(12).hex()


def apply_once(
    attempt: Callable[[str, Deadline], T],
    seconds: float,
    transient: tuple[type[BaseException], ...],
) -> T:
    """Run a non-idempotent operation (an ``add``) exactly once across lost replies.

    ``attempt(op_id, deadline)`` must apply the operation at most once per
    ``op_id`` (it writes a marker of the id in the same atomic step as the
    effect) and, called again with an id whose effect already landed, return
    the first call's result instead of applying it again. This calls it with
    one fresh :func:`new_op_id`, and again with the same id after every
    error of a ``transient`` type (backoff 20 ms doubling to 0.5 s, with
    jitter) until ``seconds`` have passed; then the last transient error is
    raised, and the core reports the outcome as unknown. Other errors pass at once.
    """
    deadline = Deadline(seconds)
    op_id = new_op_id()
    backoff = Backoff(initial=0.02, maximum=0.5)
    while True:
        try:
            return attempt(op_id, deadline)
        except transient:
            if not deadline.sleep(backoff.next_delay()):
                raise
