"""Classification of redis-py's exceptions for the core's retry logic.

The core retries exception types listed in an adapter's ``retryable_errors``.
redis-py's hierarchy does not line up with "transient": its
``AuthenticationError`` and TLS failures are ``ConnectionError`` subclasses,
while a ``READONLY`` reply during a Sentinel failover is a ``ResponseError``.
So the adapter translates at its boundary (:func:`translated`): transient
failures become :class:`RedisTransientError` (retried by the core), a
rejected login becomes :class:`RedisAuthError` (never retried), everything
else passes through unchanged as a client error that fails fast.
"""

from __future__ import annotations

import ssl
from contextlib import contextmanager
from typing import Iterator

from rdzv_core.errors import TransientStoreError

#: Error-reply prefixes that mean "try again shortly" (failover, loading, busy).
TRANSIENT_REPLIES = ("READONLY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY ", "NOREPLICAS")
#: TLS errors that are really a dropped connection, not a misconfiguration.
_TRANSIENT_TLS = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


class RedisTransientError(TransientStoreError):
    """A Redis call failed in a way that may succeed when retried."""


class RedisAuthError(PermissionError):
    """Redis rejected the credentials (wrong password, disabled user)."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``exc`` that no retry can fix, if any."""
    for link in _chain(exc):
        if isinstance(link, ssl.SSLError) and not isinstance(link, _TRANSIENT_TLS):
            return link
    return None


def is_auth_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means the server rejected (or demands) credentials."""
    import redis

    if isinstance(exc, (redis.AuthenticationError, redis.exceptions.AuthorizationError)):
        return True
    text = str(exc)
    return isinstance(exc, redis.ResponseError) and text.startswith(("WRONGPASS", "NOAUTH", "invalid password"))


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the call that raised ``exc`` may succeed."""
    import redis

    if is_auth_failure(exc) or tls_failure(exc) is not None:
        return False
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return True
    if isinstance(exc, _reply_types()):
        return True  # redis-py strips the reply's prefix (CLUSTERDOWN ...) from these
    if isinstance(exc, redis.exceptions.RedisClusterException):
        return True  # no node serves the slot yet, or none answered: a failover under way
    if isinstance(exc, redis.ResponseError):
        return str(exc).startswith(TRANSIENT_REPLIES)
    return isinstance(exc, (ConnectionError, TimeoutError)) and not isinstance(exc, PermissionError)


def _reply_types() -> tuple[type[BaseException], ...]:
    """redis-py's exception types for the transient replies of a failover."""
    import redis

    errors = redis.exceptions
    return (errors.ReadOnlyError, errors.ClusterDownError, errors.TryAgainError)


def client_error_types() -> tuple[type[BaseException], ...]:
    """Every exception type redis-py raises (``RedisClusterException`` is no ``RedisError``)."""
    import redis

    return (redis.RedisError, redis.exceptions.RedisClusterException, OSError)


def describe(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` (and of the TLS error behind it)."""
    text = f"{type(exc).__name__}: {exc}"
    tls = tls_failure(exc)
    if tls is not None and str(tls) not in text:
        text += f" ({type(tls).__name__}: {tls})"
    return text


def translate(exc: BaseException, endpoint: str) -> BaseException:
    """The exception to raise for redis-py's ``exc``: a :class:`RedisAuthError`,
    a :class:`RedisTransientError`, or ``exc`` itself (a client error)."""
    if isinstance(exc, (RedisTransientError, RedisAuthError)):
        return exc
    if is_auth_failure(exc):
        return RedisAuthError(f"Redis at {endpoint} rejected the credentials: {exc}")
    if is_transient(exc):
        return RedisTransientError(describe(exc))
    return exc


@contextmanager
def translated(endpoint: str) -> Iterator[None]:
    """Re-raise redis-py errors as the types the core classifies correctly.

    Hot paths use :func:`translate` in a plain ``try`` instead (no generator
    per call).
    """
    try:
        yield
    except client_error_types() as exc:
        mapped = translate(exc, endpoint)
        if mapped is exc:
            raise
        raise mapped from exc
