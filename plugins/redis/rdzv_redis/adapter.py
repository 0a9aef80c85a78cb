"""The Redis adapter: rdzv's primitives over one Redis server or Sentinel group.

Every mutation is one Lua script run by ``EVALSHA`` (redis-py reloads it on
``NOSCRIPT``, e.g. on a new master after a failover): atomic, one round
trip, and it refreshes the key's expiry and publishes a wake-up on the key's
channel. Reads are one ``MGET`` of the value and its version counter. See
:mod:`rdzv_redis.keys` for the key layout and :mod:`rdzv_redis.scripts` for
the scripts.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, NoReturn, Sequence

from rdzv_core.adapter import CONTRACT_VERSION, Capabilities, CasResult, StateStore, Token, Versioned
from rdzv_core.retry import Deadline, apply_once

from rdzv_redis import scripts
from rdzv_redis.errors import RedisAuthError, RedisTransientError, client_error_types, translate, translated
from rdzv_redis.keys import Namespace
from rdzv_redis.notify import KeyWaiter
from rdzv_redis.sentinel import MasterWatch
from rdzv_redis.settings import CONF_KEYS, RedisSettings, parse_settings

if TYPE_CHECKING:  # pragma: no cover
    import redis
    from torch.distributed.elastic.rendezvous import RendezvousParameters

    from rdzv_core.doctor.checks import Check, NetworkTarget
    from rdzv_core.settings import CoreSettings


class RedisStateStore(StateStore):
    """rdzv adapter over Redis (standalone, TLS, ACL, Sentinel).

    Version tokens are integers from a per-key counter (0 for a value that
    some other program wrote). ``add`` is idempotent: each call carries a
    random operation id, so a call retried after a lost reply adds once.
    """

    name = "redis"
    contract_version = CONTRACT_VERSION
    capabilities = Capabilities(read_many=True, wait=True, wait_read=True, list_keys=True, run_ids=True, purge=True,
                                ttl=True)
    conf_keys = CONF_KEYS

    def __init__(self, client: redis.Redis, settings: RedisSettings, sentinel: Any = None) -> None:
        import redis as redis_module

        self._client = client
        self._sentinel = sentinel
        self._settings = settings
        self._ns = Namespace(settings.key_prefix, settings.run_id)
        self._describe = settings.describe
        # Sentinel and Cluster send data commands through their own routing.
        self._data = client if sentinel is not None or settings.cluster else _data_client(client)
        self._register_scripts()
        self._waiter = self._new_waiter()
        self._closed = False
        self._lock = threading.Lock()
        self._watch = self._start_watch()
        self.retryable_errors = (RedisTransientError,)
        self.client_errors = (redis_module.RedisError, redis_module.exceptions.RedisClusterException, RedisAuthError)
        #: What :func:`translate` maps (caught by a plain ``try`` on hot paths).
        self._failures = client_error_types()

    def _register_scripts(self) -> None:
        def text(script: str) -> str:
            return scripts.sharded(script) if self._settings.cluster else script

        self._cas_script = self._data.register_script(text(scripts.CAS))
        self._write_script = self._data.register_script(text(scripts.WRITE))
        self._add_script = self._data.register_script(text(scripts.ADD))

    def _new_waiter(self) -> KeyWaiter:
        return KeyWaiter(self._client, self._settings.timeouts.connect, self._ns.channel_of("#idle"),
                         sharded=self._settings.cluster)

    def _start_watch(self) -> MasterWatch | None:
        if self._sentinel is None or self._settings.sentinel_master is None:
            return None
        return MasterWatch(self._sentinel, self._settings.sentinel_master, self._client.connection_pool).start()

    # -- construction -------------------------------------------------------------

    @classmethod
    def from_params(cls, params: RendezvousParameters, core: CoreSettings) -> RedisStateStore:
        """Parse the endpoint and conf keys, connect, and PING the server once.

        Bad configuration, a rejected login, a TLS mismatch, an unknown
        database or a server that is not Redis raise ``RdzvConfigError`` (a
        ``ValueError``); a server that cannot be reached or does not answer
        raises :class:`~rdzv_redis.client.RedisUnavailableError` (a
        ``ConnectionError``), which the core retries until ``connect_timeout``.
        """
        from rdzv_redis.client import build_client, verify

        settings = parse_settings(core)
        client, sentinel = build_client(settings)
        try:
            verify(client, settings)
        except BaseException:
            _close_client(client, sentinel)
            raise
        adapter = cls(client, settings, sentinel)
        adapter._waiter.warm_up()  # noqa: SLF001 - the first wait finds a connection ready
        return adapter

    @property
    def endpoint(self) -> str:
        """See base class (never shows a password)."""
        return self._describe

    @property
    def settings(self) -> RedisSettings:
        """The validated settings this adapter was built from."""
        return self._settings

    @property
    def namespace(self) -> Namespace:
        """The run's key names."""
        return self._ns

    @property
    def client(self) -> redis.Redis:
        """The underlying redis-py client (shared connection pool)."""
        return self._client

    def close(self) -> None:
        """Stop the notifier and disconnect the pool. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._waiter.close()
        if self._watch is not None:
            self._watch.close()
        if self._data is not self._client:
            _close_quietly(self._data)
        _close_client(self._client, self._sentinel)

    def after_fork(self) -> None:
        """Forget the parent's connections and listener thread (never reuse them).
        The child sends data commands through the pool (it connects lazily)."""
        if self._settings.cluster:
            _reset_cluster_pools(self._client)
        else:
            self._client.connection_pool.reset()
        self._data = self._client
        self._register_scripts()
        self._waiter = self._new_waiter()
        self._lock = threading.Lock()
        self._watch = self._start_watch()

    # -- primitives -----------------------------------------------------------------

    def _ttl_ms(self, ttl: float | None) -> int:
        if ttl is None:
            return self._settings.ttl_ms
        return max(1, int(round(ttl * 1000)))

    def _reraise(self, exc: BaseException) -> NoReturn:
        """Re-raise ``exc`` (being handled) as :func:`translate` maps it: the
        plain-``try`` twin of :func:`translated` for the hot paths."""
        mapped = translate(exc, self._describe)
        if mapped is exc:
            raise  # noqa: PLE0704 - called from an except block
        raise mapped from exc

    def read(self, key: str) -> Versioned | None:
        """See base class (one ``MGET`` of the value and its version)."""
        ns = self._ns
        try:
            value, version = self._data.mget([ns.data(key), ns.version(key)])
        except self._failures as exc:
            self._reraise(exc)
        if value is None:
            return None
        return Versioned(bytes(value), int(version) if version is not None else 0)

    def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """See base class (one ``MGET``)."""
        if not keys:
            return []
        with translated(self._describe):
            values = self._data.mget([self._ns.data(k) for k in keys])
        return [None if v is None else bytes(v) for v in values]

    def cas(self, key: str, token: Token | None, value: bytes) -> CasResult:
        """See base class (one ``EVALSHA`` comparing the version counter)."""
        ns = self._ns
        try:
            applied, current, version = self._cas_script(
                keys=[ns.data(key), ns.version(key)],
                args=["" if token is None else str(int(token)), value, self._settings.ttl_ms, ns.channel_of(key)],
            )
        except self._failures as exc:
            self._reraise(exc)
        if applied:
            return CasResult(value, int(version), True)
        if current is None:
            return CasResult(None, None, False)
        return CasResult(bytes(current), int(version), False)

    def write(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """See base class; ``ttl`` (seconds) overrides the run's ``ttl`` for this key."""
        ns = self._ns
        try:
            self._write_script(keys=[ns.data(key), ns.version(key)], args=[value, self._ttl_ms(ttl), ns.channel_of(key)])
        except self._failures as exc:
            self._reraise(exc)

    def add(self, key: str, amount: int) -> int:
        """See base class. Exactly once: retried under one operation id
        (:func:`~rdzv_core.retry.apply_once`).

        A reply lost to a dropped connection or failover is retried with the
        same id until ``read_timeout``; the script returns the first call's
        result instead of adding again.
        """
        op_ttl = int((2 * self._settings.timeouts.read + 60) * 1000)
        args = [int(amount), self._settings.ttl_ms, self._ns.channel_of(key), op_ttl]

        def attempt(op_id: str, _deadline: Deadline) -> int:
            with translated(self._describe):
                return int(self._add_script(keys=[self._ns.data(key), self._ns.version(key), self._ns.op(op_id)],
                                            args=args))

        return apply_once(attempt, self._settings.timeouts.read, self.retryable_errors)

    def delete(self, key: str) -> bool:
        """See base class. The version counter stays, so versions never repeat."""
        with translated(self._describe):
            return bool(self._data.delete(self._ns.data(key)))

    def count(self, prefix: str) -> int:
        """See base class (``SCAN MATCH`` over the run's values under ``prefix``)."""
        with translated(self._describe):
            return len(set(self._data.scan_iter(match=self._ns.match(prefix), count=1000)))

    def wait(self, keys: Sequence[str], timeout: float) -> bool:
        """See base class: blocks on the keys' Pub/Sub channels, re-checking on
        each message (``timeout <= 0``: one ``EXISTS``). See :mod:`rdzv_redis.notify`."""
        wanted = list(dict.fromkeys(keys))
        full = [self._ns.data(k) for k in wanted]
        # Several keys (a sealer's slots) are usually there already: check
        # before subscribing to their channels. One key (a seal) usually is
        # not: the waiter checks it once, after subscribing.
        if timeout <= 0 or len(full) != 1:
            if not full or self._exist(full):
                return True
            if timeout <= 0:
                return False
        channels = [self._ns.channel_of(k) for k in wanted]
        return self._waiter.wait(channels, lambda: True if self._exist(full) else None, timeout) is not None

    def wait_read(self, key: str, timeout: float) -> bytes | None:
        """See base class: subscribe, one ``GET``, then the write's own
        message carries the value (no read after the wake-up)."""
        full = self._ns.data(key)
        if timeout <= 0:
            return self._get(full)
        return self._waiter.wait([self._ns.channel_of(key)], lambda: self._get(full), timeout)

    def _get(self, full: str) -> bytes | None:
        try:
            value = self._data.get(full)
        except self._failures as exc:
            self._reraise(exc)
        return None if value is None else bytes(value)

    def _exist(self, full: list[str]) -> bool:
        with translated(self._describe):
            return bool(self._data.exists(*full) == len(full))

    # -- administration ------------------------------------------------------------

    def list_keys(self, prefix: str = "") -> list[str]:
        """See base class (``SCAN MATCH`` over the run's values under ``prefix``)."""
        start = len(self._ns.data(""))
        with translated(self._describe):
            names = set(self._data.scan_iter(match=self._ns.match(prefix), count=1000))
        return sorted(bytes(name).decode(errors="replace")[start:] for name in names)

    def run_ids(self) -> list[str]:
        """See base class: the run ids in the hash tags of every key under the key prefix."""
        from urllib.parse import unquote

        from rdzv_redis.keys import glob_escape

        head = f"{self._settings.key_prefix}:{{"
        found: set[str] = set()
        with translated(self._describe):
            for name in self._data.scan_iter(match=glob_escape(head) + "*", count=1000):
                text = bytes(name).decode(errors="replace")
                end = text.find("}", len(head))
                if end > 0:
                    found.add(unquote(text[len(head):end]))
        return sorted(found)

    def purge(self) -> int:
        """Delete every key of this run (values and bookkeeping); return how many."""
        deleted = 0
        with translated(self._describe):
            batch: list[bytes] = []
            for name in self._data.scan_iter(match=self._ns.match_all, count=1000):
                batch.append(name)
                if len(batch) >= 500:
                    deleted += int(self._data.unlink(*batch))
                    batch.clear()
            if batch:
                deleted += int(self._data.unlink(*batch))
        return deleted


    # -- diagnosis (rdzv doctor) -------------------------------------------------------

    @classmethod
    def network_targets(cls, params: RendezvousParameters, core: CoreSettings) -> list[NetworkTarget]:
        """See base class (:mod:`rdzv_redis.diagnose`)."""
        from rdzv_redis.diagnose import network_targets

        return network_targets(core)

    def diagnose(self) -> list[Check]:
        """See base class: the version, and every command exercised on a scratch key (:mod:`rdzv_redis.diagnose`)."""
        from rdzv_redis.diagnose import diagnose

        return diagnose(self)


def _data_client(client: redis.Redis) -> redis.Redis:
    """A client over one connection of ``client``'s pool, held for good: a
    data command then skips the pool's check-out (a ``select`` to see that
    an idle connection has no stray data, its locks and bookkeeping), about
    a fifth of a command's client-side cost. Commands from several threads
    take turns on it (a per-client lock); every one of them is short, since
    blocking waits use Pub/Sub connections of their own. Falls back to the
    pooled client if the connection cannot be taken now: the first command
    then connects and reports through the adapter's error mapping.

    Not for Sentinel: redis-py reconnects a held connection to the address
    it had (only a pool check-out asks the Sentinels for the master again),
    so after a failover it would keep dialing the demoted master."""
    import redis as redis_module

    try:
        return redis_module.Redis(connection_pool=client.connection_pool, single_connection_client=True)
    except (redis_module.RedisError, OSError):
        return client


def _close_quietly(client: Any) -> None:
    try:
        client.close()
    except Exception:  # noqa: BLE001 - closing must not raise
        pass


def _reset_cluster_pools(client: Any) -> None:
    """Forget the connections of every node of a ``RedisCluster`` (after a fork)."""
    for node in client.get_nodes():
        if node.redis_connection is not None:
            node.redis_connection.connection_pool.reset()


def _close_client(client: Any, sentinel: Any) -> None:
    """Disconnect ``client``'s pool and the Sentinel connections (best effort)."""
    try:
        pool = getattr(client, "connection_pool", None)
        if pool is None:  # a RedisCluster: one pool per node
            client.close()
            return
        pool.disconnect()
    except Exception:  # noqa: BLE001 - closing must not raise
        pass
    for node in getattr(sentinel, "sentinels", ()) or ():
        try:
            node.connection_pool.disconnect()
        except Exception:  # noqa: BLE001
            pass
