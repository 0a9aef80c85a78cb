"""The c10d adapter: rdzv's primitives over a TCPStore or a FileStore.

c10d stores have no version numbers, only a value-based ``compare_set``.
Every value rdzv CASes is unique (state frames carry a random nonce), so the
value itself serves as the version token. Reading without blocking uses a
``compare_set`` whose expected and desired values are the same sentinel: it
never changes the key and returns the sentinel only when the key is absent.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Sequence

from rdzv_core.adapter import CONTRACT_VERSION, Capabilities, CasResult, StateStore, Token, Versioned
from rdzv_core.endpoints import parse_endpoint
from rdzv_core.errors import RdzvConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch.distributed as dist
    from torch.distributed.elastic.rendezvous import RendezvousParameters

    from rdzv_core.doctor.checks import Check, NetworkTarget
    from rdzv_core.settings import CoreSettings

DEFAULT_PORT = 29400
#: Never a stored value: rdzv writes frames (b"RZ...") and ASCII counters.
_ABSENT = b"\x00rdzv:absent\x00"


def _is_local_host(host: str) -> bool:
    """Whether ``host`` names this machine (torch's c10d uses the same idea)."""
    if host in ("localhost", "127.0.0.1", "::1", "0.0.0.0", "::"):
        return True
    names = {socket.gethostname(), socket.getfqdn()}
    if host in names:
        return True
    try:
        local = {info[4][0] for name in names for info in socket.getaddrinfo(name, None)}
        wanted = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(local & wanted)


class C10dStateStore(StateStore):
    """rdzv adapter over ``torch.distributed.TCPStore`` / ``FileStore``.

    Conf keys: ``store_type`` (``tcp`` or ``file``), ``is_host`` (host the
    TCPStore in this process; inferred from the endpoint when unset).
    """

    name = "c10d"
    contract_version = CONTRACT_VERSION
    capabilities = Capabilities(wait=True, native_store=True, list_keys=True, run_ids=True, purge=True)
    conf_keys = frozenset({"store_type", "is_host"})

    def __init__(self, store: dist.Store, run_id: str, endpoint: str, reopen: Any) -> None:
        import torch.distributed as dist

        self._store = store
        # FileStore.delete_key returns True even for a missing key.
        self._delete_reports_existence = not isinstance(store, dist.FileStore)
        self._prefix = f"rdzv/{run_id}/"
        self._endpoint = endpoint
        self._reopen = reopen
        self.retryable_errors = (dist.DistNetworkError,)
        self.client_errors = (dist.DistError, RuntimeError)

    # -- construction -------------------------------------------------------------

    @classmethod
    def from_params(cls, params: RendezvousParameters, core: CoreSettings) -> C10dStateStore:
        """Create (or connect to) the TCPStore / open the FileStore."""
        if core.conf.choice("store_type", ("tcp", "file"), "tcp") == "file":
            return cls._file(core)
        return cls._tcp(core)

    @classmethod
    def _file(cls, core: CoreSettings) -> C10dStateStore:
        import torch.distributed as dist

        timeout = timedelta(seconds=core.read_timeout)
        path = core.endpoint.strip()
        if not path:
            handle, path = tempfile.mkstemp(prefix="rdzv-c10d-")
            os.close(handle)
        elif not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise RdzvConfigError(f"store_type=file: the directory of endpoint '{path}' does not exist")

        def open_store() -> dist.Store:
            store = dist.FileStore(path, -1)
            store.set_timeout(timeout)
            return store

        return cls(open_store(), core.run_id, f"file {path}", open_store)

    @classmethod
    def _tcp(cls, core: CoreSettings) -> C10dStateStore:
        import torch.distributed as dist

        timeout = timedelta(seconds=core.read_timeout)
        connect_timeout = timedelta(seconds=core.connect_timeout)
        endpoint = parse_endpoint(core.endpoint or "localhost", DEFAULT_PORT)
        explicit = core.conf.boolean("is_host")
        is_host = explicit if explicit is not None else _is_local_host(endpoint.host)

        def connect(port: int) -> dist.Store:
            # TCPStore has one timeout for connecting and for operations:
            # connect within connect_timeout, then operate with read_timeout.
            client = dist.TCPStore(endpoint.host, port, is_master=False, multi_tenant=True, timeout=connect_timeout)
            client.set_timeout(timeout)
            return client

        store = None
        if is_host:
            try:
                store = dist.TCPStore(endpoint.host, endpoint.port, is_master=True, multi_tenant=True, timeout=timeout)
            except (RuntimeError, ValueError):
                if explicit:  # the user said we host it: do not hide the failure
                    raise
                # Another agent on this machine hosts it already: be a client.
        if store is None:
            store = connect(endpoint.port)
        port = store.port  # the real port when the endpoint said :0
        return cls(store, core.run_id, f"tcp {endpoint.host}:{port}", lambda: connect(port))

    @classmethod
    def network_targets(cls, params: RendezvousParameters, core: CoreSettings) -> list[NetworkTarget]:
        """See base class: the TCPStore's address, hosted by an agent of the launch."""
        from rdzv_c10d.diagnose import network_targets

        return network_targets(core, DEFAULT_PORT)

    def diagnose(self) -> list[Check]:
        """See base class (:mod:`rdzv_c10d.diagnose`)."""
        from rdzv_c10d.diagnose import diagnose

        return diagnose(self)

    @property
    def endpoint(self) -> str:
        """See base class."""
        return self._endpoint

    def after_fork(self) -> None:
        """Open a fresh client connection in the child process."""
        self._store = self._reopen()

    def native_store(self) -> dist.Store:
        """The c10d store itself: torch's handler and agent use it directly."""
        return self._store

    # -- primitives ---------------------------------------------------------------

    def _k(self, key: str) -> str:
        return self._prefix + key

    def read(self, key: str) -> Versioned | None:
        """See base class (one ``compare_set`` round trip, never blocks)."""
        value = self._store.compare_set(self._prefix + key, _ABSENT, _ABSENT)
        if value == _ABSENT:
            return None
        return Versioned(value, value)

    def cas(self, key: str, token: Token | None, value: bytes) -> CasResult:
        """See base class: the token is the value we expect to replace."""
        expected = b"" if token is None else token
        current = self._store.compare_set(self._prefix + key, expected, value)
        if current == value:
            return CasResult(value, value, True)
        if token is not None and current == expected:
            # c10d returns ``expected`` for a missing key (a present one holding
            # ``expected`` would have been swapped): the key is gone.
            return CasResult(None, None, False)
        return CasResult(current, current, False)

    def write(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """See base class (c10d has no TTL: ``ttl`` is ignored)."""
        self._store.set(self._k(key), value)

    def add(self, key: str, amount: int) -> int:
        """See base class."""
        return int(self._store.add(self._k(key), amount))

    def delete(self, key: str) -> bool:
        """See base class."""
        full = self._k(key)
        existed = self._delete_reports_existence or self._store.check([full])
        return bool(self._store.delete_key(full)) and existed

    def count(self, prefix: str) -> int:
        """See base class (lists the store's keys)."""
        full = self._k(prefix)
        return sum(1 for key in self._store.list_keys() if key.startswith(full))

    def list_keys(self, prefix: str = "") -> list[str]:
        """See base class (lists the store's keys)."""
        full = self._k(prefix)
        return sorted(key[len(self._prefix):] for key in self._store.list_keys() if key.startswith(full))

    def run_ids(self) -> list[str]:
        """See base class: the runs with keys under ``rdzv/<run id>/`` (a run id
        holding ``/`` shows its first segment only)."""
        return sorted({key.split("/", 2)[1] for key in self._store.list_keys()
                       if key.startswith("rdzv/") and key.count("/") >= 2})

    def purge(self) -> int:
        """See base class. Also deletes the agents' Store keys of the run, which
        torch (``torch.rendezvous.<run>.<round>/``) and the scalable handler
        (``rdzv.<run>.<round>/``) keep in the same store outside the run's namespace."""
        run = re.escape(self._prefix[len("rdzv/"):-1])
        agents = re.compile(rf"^(?:torch\.rendezvous|rdzv)\.{run}\.\d+/")
        doomed = [key for key in self._store.list_keys() if key.startswith(self._prefix) or agents.match(key)]
        return sum(1 for key in doomed if self._store.delete_key(key))

    def wait(self, keys: Sequence[str], timeout: float) -> bool:
        """See base class: c10d's own server-side wait (``timeout <= 0``: one ``check``).

        TCPStore also wakes the waiters of a key when a ``compare_set`` touches
        it without creating it (our non-blocking ``read`` of a missing key does
        that), so a wake-up is confirmed with ``check`` before it counts.
        """
        full = [self._k(k) for k in keys]
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return self._store.check(full)
            try:
                self._store.wait(full, timedelta(seconds=max(left, 0.001)))
            except RuntimeError:
                # A timeout, or a broken connection: check() tells them apart by
                # raising again for the latter.
                return self._store.check(full)
            if self._store.check(full):
                return True
