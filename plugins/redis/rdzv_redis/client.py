"""Build the redis-py client for a run and check that the server answers.

One connection pool per adapter. redis-py's own retries are switched off
(``Retry(NoBackoff(), 0)``): the core owns retrying, and a silent client-side
resend of an ``EVALSHA`` whose reply was lost could apply a write twice.
RESP2 is used for the widest server compatibility.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from rdzv_core.errors import RdzvConfigError

from rdzv_redis.errors import client_error_types, describe, is_auth_failure, is_transient, tls_failure
from rdzv_redis.settings import PASSWORD_ENV, RedisSettings

if TYPE_CHECKING:  # pragma: no cover
    import redis


class RedisUnavailableError(ConnectionError):
    """The server could not be reached (or did not answer) at start-up: transient."""


def _no_retry() -> Any:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


def _tls_kwargs(settings: RedisSettings) -> dict[str, Any]:
    tls = settings.tls
    if tls is None:
        return {}
    return {
        "ssl": True,
        "ssl_ca_certs": tls.ca_certs,
        "ssl_certfile": tls.certfile,
        "ssl_keyfile": tls.keyfile,
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": tls.check_hostname,
    }


@functools.lru_cache(maxsize=1)
def _driver_kwargs() -> dict[str, Any]:
    """``CLIENT SETINFO`` names rdzv-redis; resolved once, because redis-py
    otherwise looks its own version up in the package metadata on every new
    connection (a cost that showed at 256 agents connecting at once)."""
    try:
        from importlib.metadata import version

        from redis.driver_info import DriverInfo  # redis-py >= 8
    except ImportError:
        return {}
    try:
        ours = version("rdzv-redis")
    except Exception:  # noqa: BLE001 - not installed as a distribution (source tree)
        ours = "0"
    return {"driver_info": DriverInfo().add_upstream_driver("rdzv-redis", ours)}


def connection_kwargs(settings: RedisSettings) -> dict[str, Any]:
    """Keyword arguments shared by every connection to the data server."""
    return {
        **_driver_kwargs(),
        "db": settings.db,
        "username": settings.username,
        "password": settings.password,
        "socket_timeout": settings.timeouts.read,
        "socket_connect_timeout": settings.timeouts.connect,
        "socket_keepalive": True,
        "retry": _no_retry(),
        "protocol": 2,
    }


def _cluster_client(settings: RedisSettings, kwargs: dict[str, Any]) -> Any:
    """A ``RedisCluster`` over the seed nodes. It follows MOVED/ASK itself;
    with ``retry`` at zero a connection error refreshes its slot map and
    reaches the core, which retries within ``read_timeout``. Creating it
    asks the seeds for the slot map: failing that is transient."""
    import redis
    from redis.cluster import ClusterNode, RedisCluster

    options = {k: v for k, v in kwargs.items() if k != "db"}
    try:
        return RedisCluster(startup_nodes=[ClusterNode(ep.host, ep.port) for ep in settings.endpoints],
                            require_full_coverage=False, **options, **_tls_kwargs(settings))
    except client_error_types() as exc:
        if is_auth_failure(exc) or tls_failure(exc) is not None:
            raise _permanent_failure(settings, exc) from exc
        raise RedisUnavailableError(
            f"no Redis Cluster node at {settings.describe} answered (connect_timeout {settings.timeouts.connect:g} s): "
            f"{describe(exc)}"
        ) from exc


def build_client(settings: RedisSettings) -> tuple[redis.Redis, Any]:
    """The client for ``settings`` and the Sentinel object (``None`` without Sentinel)."""
    import redis
    from redis.sentinel import Sentinel

    kwargs = connection_kwargs(settings)
    if settings.cluster:
        return _cluster_client(settings, kwargs), None
    if settings.sentinel_master is not None:
        sentinel_kwargs = {
            "socket_timeout": settings.timeouts.read,
            "socket_connect_timeout": settings.timeouts.connect,
            "username": settings.sentinel_username,
            "password": settings.sentinel_password,
            "retry": _no_retry(),
            "protocol": 2,
            **_tls_kwargs(settings),
        }
        sentinel = Sentinel(
            [(ep.host, ep.port) for ep in settings.endpoints],
            sentinel_kwargs=sentinel_kwargs,
            **kwargs,
            **_tls_kwargs(settings),
        )
        return sentinel.master_for(settings.sentinel_master), sentinel
    if settings.unix_path is not None:
        unix_kwargs = {k: v for k, v in kwargs.items() if k != "socket_keepalive"}
        pool = redis.ConnectionPool(
            connection_class=redis.UnixDomainSocketConnection, path=settings.unix_path, **unix_kwargs
        )
    else:
        endpoint = settings.endpoints[0]
        connection_class = redis.SSLConnection if settings.tls is not None else redis.Connection
        tls = {k: v for k, v in _tls_kwargs(settings).items() if k != "ssl"}
        pool = redis.ConnectionPool(
            connection_class=connection_class, host=endpoint.host, port=endpoint.port, **kwargs, **tls
        )
    return redis.Redis(connection_pool=pool), None


def _permanent_failure(settings: RedisSettings, exc: BaseException) -> Exception:
    """A clear configuration error for a failure no retry can fix."""
    import redis

    where = settings.describe
    if is_auth_failure(exc):
        who = f"user '{settings.username}'" if settings.username else "the default user"
        how = "no password was given" if settings.password is None else "a password was given"
        return RdzvConfigError(
            f"Redis at {where} rejected the login of {who} ({how}): {exc}. Check --rdzv-conf username, "
            f"password_file and ${PASSWORD_ENV}"
        )
    tls = tls_failure(exc)
    if tls is not None:
        hint = (
            "is the server speaking TLS on this port? (use redis:// for a plain server)"
            if "WRONG_VERSION" in str(tls) or "record layer" in str(tls).lower() or "UNEXPECTED" in str(tls)
            else "check ssl_ca_certs / ssl_certfile / ssl_keyfile and the server certificate's host names"
        )
        return RdzvConfigError(f"TLS handshake with Redis at {where} failed: {describe(exc)}; {hint}")
    if isinstance(exc, redis.exceptions.InvalidResponse):
        return RdzvConfigError(f"the server at {where} does not speak the Redis protocol ({exc}): is it Redis?")
    if isinstance(exc, redis.ResponseError) and "NOPERM" in str(exc):
        return RdzvConfigError(f"Redis at {where}: the user lacks a permission rdzv needs: {exc}")
    return RdzvConfigError(f"Redis at {where} refused the connection set-up: {describe(exc)}")


def _unavailable_hint(settings: RedisSettings, exc: BaseException) -> str:
    """A guess at the cause of a timeout, for the error message."""
    import redis

    chain = " ".join(str(link) for link in _links(exc)).lower()
    if settings.tls is not None and "handshake" in chain:
        return " (the TLS handshake got no answer: does the server speak TLS on this port? use redis:// if not)"
    if isinstance(exc, redis.TimeoutError) and "reading" in chain:
        hint = " (connected, but no reply: is this port a Redis server?"
        return hint + (")" if settings.tls is not None else " does it need TLS, rediss://?)")
    if "reset by peer" in chain or "closed by server" in chain:
        hint = " (the server closes every connection"
        return hint + (": is it Redis?)" if settings.tls is not None else ": does it require TLS, rediss://?)")
    return ""


def _links(exc: BaseException) -> list[BaseException]:
    links: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in links:
        links.append(current)
        current = current.__cause__ or current.__context__
    return links


def verify(client: redis.Redis, settings: RedisSettings) -> None:
    """PING the server once.

    A transient failure (refused, reset, timed out, still loading, no master
    yet) raises :class:`RedisUnavailableError`, which the core retries with
    backoff until ``connect_timeout`` (so agents may start a moment before
    Redis does). A failure no retry can fix (wrong password, TLS mismatch,
    unknown database, not a Redis server) raises ``RdzvConfigError``.
    """
    import redis

    try:
        client.ping()
    except client_error_types() as exc:
        if not is_transient(exc):
            raise _permanent_failure(settings, exc) from exc
        raise RedisUnavailableError(
            f"no answer from Redis at {settings.describe} to PING (connect_timeout {settings.timeouts.connect:g} s, "
            f"read_timeout {settings.timeouts.read:g} s): {describe(exc)}{_unavailable_hint(settings, exc)}"
        ) from exc
