"""One etcd client per process for every adapter of the same cluster and credentials.

gRPC wants channels reused: each channel of the Python runtime polls on a
thread of its own, and each client keeps a Watch stream open
(:mod:`rdzv_etcd.watches`). Adapters of one process that reach the same
members with the same TLS material, credentials and timeouts therefore share
one :class:`~rdzv_etcd.client.EtcdClient` (it is thread-safe): a process
with many handlers (a test, a benchmark, a library hosting several runs)
holds one connection to each member instead of one per handler. Adapters
sharing a client also share its leases of the same TTL (a lease is only an
expiry: keys of every run of this process on that lease stay while any of
them writes, and lapse together when the process stops). The client is closed when its last adapter
closes; a forked child never touches the clients it inherited (it forgets
their connections and starts its own).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Callable, Hashable

if TYPE_CHECKING:  # pragma: no cover
    from rdzv_etcd.client import EtcdClient
    from rdzv_etcd.leases import LeaseKeeper

_lock = threading.Lock()
_clients: dict[Hashable, list[object]] = {}  # key -> [client, users, {ttl: LeaseKeeper}]
_pid = os.getpid()


def _forget_inherited() -> None:
    """In a forked child: drop the parent's clients without using them (call holding ``_lock``)."""
    global _pid
    if os.getpid() == _pid:
        return
    for client, *_rest in _clients.values():
        client.forget_connections()  # type: ignore[attr-defined]
    _clients.clear()
    _pid = os.getpid()


def acquire(key: Hashable, build: Callable[[], EtcdClient]) -> EtcdClient:
    """The shared client for ``key`` (built by ``build`` for its first user)."""
    global _lock
    if os.getpid() != _pid:
        _lock = threading.Lock()  # a parent thread may have held it across fork
    with _lock:
        _forget_inherited()
        entry = _clients.get(key)
        if entry is None:
            entry = _clients[key] = [build(), 0, {}]
        entry[1] = int(entry[1]) + 1  # type: ignore[call-overload]
        return entry[0]  # type: ignore[return-value]


def release(key: Hashable, client: EtcdClient) -> None:
    """One user of ``client`` is done; the last one closes it."""
    with _lock:
        entry = _clients.get(key)
        if entry is None or entry[0] is not client:
            return  # not shared (any more): closed by its last user already
        entry[1] = int(entry[1]) - 1  # type: ignore[call-overload]
        if entry[1] > 0:
            return
        del _clients[key]
    client.close()


def leases(key: Hashable, client: EtcdClient, ttl: float) -> LeaseKeeper:
    """The lease keeper of ``client`` for keys of ``ttl`` seconds, shared by
    the adapters sharing ``client`` (a keeper of its own for an unshared one)."""
    from rdzv_etcd.leases import LeaseKeeper

    with _lock:
        entry = _clients.get(key)
        if entry is None or entry[0] is not client:
            return LeaseKeeper(client, ttl)
        keepers: dict[float, LeaseKeeper] = entry[2]  # type: ignore[assignment]
        if ttl not in keepers:
            keepers[ttl] = LeaseKeeper(client, ttl)
        return keepers[ttl]


def users(key: Hashable) -> int:
    """How many adapters share the client for ``key`` now (0: none)."""
    with _lock:
        entry = _clients.get(key)
        return 0 if entry is None else int(entry[1])  # type: ignore[call-overload]
