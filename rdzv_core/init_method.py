"""``init_method`` URLs on rdzv's stores, for jobs started without torchrun.

``import rdzv_core.init_method`` registers, with torch's
``torch.distributed.rendezvous.register_rendezvous_handler``, the schemes
``redis://``, ``rediss://``, ``etcd://`` and ``rdzv+<name>://`` for every
installed adapter (and for the first-party ones that are not installed, whose
handler then says which package to install). Then::

    dist.init_process_group("gloo", init_method="redis://host:6379/job42?rank=3&world_size=8")

connects to the store the way an agent does (the same conf keys, passwords
from the same files and environment variables), checks that the run's
processes agree on the world size and that the run id is not left over from
an earlier job, and hands torch a ``torch.distributed.Store`` over the
adapter under a key prefix of the run's own. URL syntax: :mod:`rdzv_core.init_url`.

torch has no entry-point group for these handlers (it fills its table only
through ``register_rendezvous_handler``), so the import is needed.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import timedelta
from typing import Callable, Iterator

import torch.distributed as dist
from torch.distributed.constants import default_pg_timeout
from torch.distributed.elastic.rendezvous import RendezvousConnectionError, RendezvousParameters
from torch.distributed.rendezvous import register_rendezvous_handler

from rdzv_core.bridge import BridgeStore
from rdzv_core.errors import PluginError, RdzvConfigError, UnknownBackendError
from rdzv_core.guarded import GuardedStore, StoreFailure
from rdzv_core.handler import connect_adapter, guard_adapter
from rdzv_core.init_url import InitRequest, adapter_schemes, in_url_terms, membership_problem, parse_init_url
from rdzv_core.plugins import FIRST_PARTY, BackendRegistry, load_registry

log = logging.getLogger(__name__)

#: Adapter keys (relative to the run's namespace) of an init_method run.
STORE_PREFIX = "init/kv/"
WORLD_SIZE_KEY = "init/world_size"
JOINED_KEY = "init/joined"

_registered: set[str] = set()
#: One store per (backend, endpoint, run, rank) in a process: a second
#: rendezvous on the same URL (``init_rpc`` after ``init_process_group``)
#: shares it and does not join the run twice.
_stores: dict[tuple[str, str, str, int], dist.Store] = {}
_stores_lock = threading.Lock()


def _prefixed(request: InitRequest, exc: Exception) -> Exception:
    """``exc`` again, its message led by the URL (the type kept for callers)."""
    text = str(exc)
    if text.startswith("init_method '"):
        return exc
    if isinstance(exc, RdzvConfigError):
        text = in_url_terms(text)
    return type(exc)(f"init_method '{request.shown}': {text}")


def _join(guarded: GuardedStore, request: InitRequest) -> None:
    """Record this process in the run; raise if it may not take part."""
    ours = str(request.world_size).encode()
    try:
        recorded = guarded.cas(WORLD_SIZE_KEY, None, ours, lambda current: current is not None and current.value == ours)
        problem = membership_problem(request.world_size, recorded.value, None)
        if problem is None:
            problem = membership_problem(request.world_size, None, guarded.add(JOINED_KEY, 1))
    except StoreFailure as failure:
        raise RendezvousConnectionError(f"init_method '{request.shown}': {failure}") from None
    if problem is not None:
        raise RdzvConfigError(f"init_method '{request.shown}': run '{request.run_id}': {problem}")


def open_store(request: InitRequest, registry: BackendRegistry, timeout: timedelta) -> dist.Store:
    """Connect to the run's store and join the run; return the Store for torch."""
    params = RendezvousParameters(request.backend, request.endpoint, request.run_id, 1, 1, **request.conf)
    try:
        adapter, core = connect_adapter(params, registry)
    except (RdzvConfigError, UnknownBackendError, PluginError, RendezvousConnectionError) as exc:
        raise _prefixed(request, exc) from None
    guarded, _codec = guard_adapter(adapter, core)
    try:
        _join(guarded, request)
    except BaseException:
        adapter.close()
        raise
    native = adapter.native_store() if adapter.capabilities.native_store else None
    if native is not None:  # c10d: the TCPStore/FileStore itself, under the run's prefix
        return dist.PrefixStore(f"rdzv-init/{request.run_id}", native)
    return BridgeStore(guarded, timeout, prefix=STORE_PREFIX)


#: What torch's table holds: ``(url, timeout=..., **kwargs) -> iterator of (store, rank, world_size)``.
Handler = Callable[..., Iterator[tuple[dist.Store, int, int]]]


def _handler(registry: BackendRegistry) -> Handler:
    """torch's handler for rdzv's schemes over the adapters of ``registry``."""

    def handler(url: str, timeout: timedelta = default_pg_timeout, **_: object) -> Iterator[tuple[dist.Store, int, int]]:
        request = parse_init_url(url, os.environ, timeout.total_seconds())
        key = (request.backend, request.endpoint, request.run_id, request.rank)
        with _stores_lock:
            store = _stores.get(key)
            if store is None:
                store = _stores[key] = open_store(request, registry, timeout)
        yield store, request.rank, request.world_size
        raise RuntimeError(f"init_method '{request.shown}': rdzv's init_method schemes do not re-rendezvous")

    return handler


def register(registry: BackendRegistry | None = None) -> list[str]:
    """Register rdzv's schemes with torch; return those registered by this call.

    A scheme that another library already registered keeps its handler (a
    warning says so); calling this again registers only new adapters' schemes.
    """
    registry = registry if registry is not None else load_registry()
    names = set(registry.adapters) | set(FIRST_PARTY) | {f.plugin for f in registry.failures}
    names |= {name for f in registry.failures for name in f.names}
    handler = _handler(registry)
    added = []
    for scheme in sorted(adapter_schemes(names)):
        if scheme in _registered:
            continue
        try:
            register_rendezvous_handler(scheme, handler)
        except RuntimeError:
            log.warning("rdzv: torch already has an init_method handler for %s:// (not rdzv's); it stays", scheme)
            continue
        _registered.add(scheme)
        added.append(scheme)
    return added


register()
