"""Rendezvous agents under test: torch's c10d backend and rdzv's backends.

A :class:`Target` names one column of the comparison (``torch c10d``,
``rdzv redis``, ``rdzv redis · scalable``...). :class:`AgentGroup` creates
the handlers of one run — each with its own store client, as separate
agents have — all feeding one shared :class:`StoreCounters`.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from benchmarks.counters import StoreCounters
from benchmarks.instruments import CountingStore, counting_registry

#: ``Target.kind`` of torch's built-in backend (the baseline).
TORCH_C10D = "torch-c10d"
#: rdzv adapters the benchmarks know how to reach.
RDZV_KINDS = ("c10d", "redis", "etcd")


class NotAvailable(Exception):
    """The target cannot be built here (e.g. ``protocol=scalable`` not shipped yet)."""


@dataclass(frozen=True)
class Target:
    """One backend + protocol on one live store."""

    kind: str  # TORCH_C10D or an rdzv adapter name
    endpoint: str
    protocol: str = "torch"
    conf: tuple[tuple[str, str], ...] = ()

    @property
    def baseline(self) -> bool:
        """Whether this is torch's own c10d backend."""
        return self.kind == TORCH_C10D

    @property
    def server(self) -> str:
        """The store server kind with its own traffic counters (``""`` for TCPStore)."""
        return "" if self.kind in (TORCH_C10D, "c10d") else self.kind

    @property
    def label(self) -> str:
        """The column name in tables."""
        if self.baseline:
            return "torch c10d"
        return f"rdzv {self.kind}" + (" · scalable" if self.protocol != "torch" else "")


def new_run_id(prefix: str = "bench") -> str:
    """A run id no other run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _params(target: Target, run_id: str, min_nodes: int, max_nodes: int, settings: dict[str, Any]) -> Any:
    from torch.distributed.elastic.rendezvous import RendezvousParameters

    conf: dict[str, Any] = dict(target.conf)
    conf.update(settings)
    if target.baseline:
        backend = "c10d"
        conf.setdefault("is_host", "false")
    else:
        backend = f"rdzv-{target.kind}"
        conf["protocol"] = target.protocol
        if target.kind == "c10d":
            conf.setdefault("is_host", "false")
            # torch's c10d backend connects with its read_timeout (60 s); give rdzv's
            # the same: on this kind of machine a TCPStore connect now and then stalls for 5 s.
            conf.setdefault("connect_timeout", "60")
    return RendezvousParameters(backend, target.endpoint, run_id, min_nodes, max_nodes, local_addr="127.0.0.1", **conf)


@dataclass
class AgentGroup:
    """The handlers of one rendezvous run and the instrument they share."""

    target: Target
    min_nodes: int
    max_nodes: int
    settings: dict[str, Any]
    run_id: str = field(default_factory=new_run_id)
    counters: StoreCounters = field(default_factory=StoreCounters)
    handlers: list[Any] = field(default_factory=list)
    #: Adapter instances (rdzv) or stores (torch) created for each handler.
    connections: list[list[Any]] = field(default_factory=list)
    #: Where c10d clients come from (threads mode); ``None``: connect per agent.
    tcp_pool: Any = None
    _instances: _Tracker = field(default_factory=lambda: _Tracker())
    _registry: Any = None
    _leased: list[Any] = field(default_factory=list)
    _pooled: bool = False
    _lease_lock: threading.Lock = field(default_factory=threading.Lock)

    def add_agents(self, count: int, parallel: int = 32) -> None:
        """Create ``count`` more handlers, ``parallel`` at a time (a few
        TCPStore client connects stall for 5 s on loopback; in parallel the
        stalls overlap). Raises :class:`NotAvailable`."""
        if self.tcp_pool is not None and self.target.kind in (TORCH_C10D, "c10d"):
            self._leased = self.tcp_pool.lease(count)
            self._pooled = True
        if self._registry is None and not self.target.baseline:
            source = self._next_client if self._pooled else None
            self._registry = counting_registry(f"rdzv-{self.target.kind}", self.counters, self._instances, source)
        self.handlers.append(None)  # the first one alone: a NotAvailable surfaces at once
        self.connections.append([])
        self.handlers[-1], self.connections[-1] = self._create_tracked()
        if count > 1:
            with ThreadPoolExecutor(max(1, min(parallel, count - 1))) as pool:
                for handler, conns in pool.map(lambda _: self._create_tracked(), range(count - 1)):
                    self.handlers.append(handler)
                    self.connections.append(conns)

    def _next_client(self) -> Any:
        with self._lease_lock:
            return self._leased.pop()

    def _create_tracked(self) -> tuple[Any, list[Any]]:
        bucket: list[Any] = []
        self._instances.local.bucket = bucket
        try:
            return self._create(), bucket
        finally:
            self._instances.local.bucket = None

    def _create(self) -> Any:
        params = _params(self.target, self.run_id, self.min_nodes, self.max_nodes, self.settings)
        if self.target.baseline:
            return self._create_torch(params)
        from rdzv_core.errors import RdzvConfigError
        from rdzv_core.handler import create_rdzv_handler

        try:
            return create_rdzv_handler(params, self._registry)
        except RdzvConfigError as exc:
            if self.target.protocol != "torch":
                raise NotAvailable(str(exc)) from exc
            raise

    def _create_torch(self, params: Any) -> Any:
        """torch's own c10d backend, as torch's ``create_backend`` builds it
        (or over a pooled client: the same TCPStore client, connected
        earlier), with its store calls counted; the handler keeps the real
        store."""
        from torch.distributed.elastic.rendezvous.c10d_rendezvous_backend import (
            C10dRendezvousBackend,
            create_backend,
        )
        from torch.distributed.elastic.rendezvous.dynamic_rendezvous import create_handler

        if self._pooled:
            store = self._next_client()
        else:
            _, store = create_backend(params)
        self._instances.append(store)
        backend = C10dRendezvousBackend(CountingStore(store, self.counters), params.run_id)
        return create_handler(store, backend, params)

    def stop_agent(self, index: int) -> bool:
        """Make agent ``index`` fall silent like a killed process: its
        heartbeats stop and its store connections close. Returns whether the
        handler type supports it."""
        handler = self.handlers[index]
        stop = getattr(handler, "_stop_heartbeats", None)  # torch's handler: no public call
        if stop is None:
            return False
        stop()
        for conn in self.connections[index]:
            _close(conn)
        return True

    def close(self) -> None:
        """Stop every heartbeat and close every connection of this run."""

        def silence(handler: Any) -> None:
            stop = getattr(handler, "_stop_heartbeats", None)
            try:
                if stop is not None:
                    stop()
                else:
                    handler.shutdown()
            except Exception:  # noqa: BLE001 - best effort clean-up
                pass

        handlers = [h for h in self.handlers if h is not None]
        pooled = self._pooled
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(silence, handlers))
            if not pooled:
                list(pool.map(lambda conns: [_close(c) for c in conns], self.connections))
        if pooled:
            self.tcp_pool.give_back([_tcp_client(c) for conns in self.connections for c in conns] + self._leased)
            self._leased = []
        self.handlers.clear()
        self.connections.clear()


class _Tracker:
    """Collects created connections, per creating thread (one handler each)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.all: list[Any] = []
        self._lock = threading.Lock()

    def append(self, item: Any) -> None:
        with self._lock:
            self.all.append(item)
        bucket = getattr(self.local, "bucket", None)
        if bucket is not None:
            bucket.append(item)


def _tcp_client(conn: Any) -> Any:
    """The TCPStore behind a connection record (a store, or an rdzv c10d adapter)."""
    native = getattr(conn, "native_store", None)
    return native() if native is not None else conn


def _close(conn: Any) -> None:
    close = getattr(conn, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001
            pass


def settings_for(join_timeout: float, keep_alive_interval: int = 5, last_call_timeout: int = 30,
                 keep_alive_max_attempt: int = 3) -> dict[str, Any]:
    """``--rdzv-conf`` values torch's handler reads (whole seconds: torch parses ints)."""
    return {
        "join_timeout": max(1, int(round(join_timeout))),
        "last_call_timeout": int(last_call_timeout),
        "keep_alive_interval": int(keep_alive_interval),
        "keep_alive_max_attempt": int(keep_alive_max_attempt),
    }

