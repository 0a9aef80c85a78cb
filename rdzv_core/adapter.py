"""The adapter contract: what a store author implements.

An adapter is a thin layer over one store's client library. It implements a
handful of primitives over *relative* keys of one run (the adapter maps them
into the run's namespace, e.g. ``{rdzv}:{run-id}:state`` on Redis); the core
adds everything that is the same for every store: framing, CAS retry,
deadlines, error mapping and the bridge into torch.

Rules every adapter follows (the conformance suite checks them):

* Values are ``bytes``. A key written by :meth:`StateStore.add` holds the
  counter as ASCII decimal (``b"7"``), so ``read`` of a counter returns it.
* ``cas`` is atomic. Its ``token`` is an opaque version handed out by
  ``read``/``cas``; ``None`` means "create only if absent". On a lost race it
  returns the current value and token with ``applied=False``.
* Every primitive returns or raises within the adapter's own I/O timeout
  (``read_timeout``). Transient failures raise an exception whose type is in
  ``retryable_errors``; the core retries those until the operation's deadline.
* An instance is used from several threads at once and must be thread-safe;
  a client connection is never used across ``fork`` (see :meth:`after_fork`).
* Client libraries are imported in :meth:`from_params`, never at module
  import: torch imports every ``torchrun.handlers`` entry point on launch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from rdzv_core.retry import poll_until

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch.distributed as dist
    from torch.distributed.elastic.rendezvous import RendezvousParameters

    from rdzv_core.doctor.checks import Check, NetworkTarget

#: An adapter's version token: opaque to the core, compared only by the store.
Token = Any


@dataclass(frozen=True, slots=True)
class Versioned:
    """A value read from the store together with its version token."""

    value: bytes
    token: Token


@dataclass(frozen=True, slots=True)
class CasResult:
    """The outcome of :meth:`StateStore.cas`.

    ``value``/``token`` describe what the key holds *after* the call: our value
    when ``applied`` is true, otherwise the competing value (``None`` when the
    key does not exist).
    """

    value: bytes | None
    token: Token
    applied: bool


class StateStore(ABC):
    """Abstract base class of every rdzv adapter (one instance per run).

    Subclasses set :attr:`name`, implement the abstract primitives and
    :meth:`from_params`, and may override the optional ones (``wait``,
    ``wait_read``, ``read_many``, ``native_store``) where the store does better than the
    generic fallbacks written here.
    """

    #: The backend name users pass to ``--rdzv-backend`` (``"redis"``).
    name: ClassVar[str] = ""
    #: ``--rdzv-conf`` keys this adapter understands, beyond the core's own.
    conf_keys: ClassVar[frozenset[str]] = frozenset()
    #: Whether ``write(..., ttl=...)`` expires keys natively.
    supports_ttl: ClassVar[bool] = False

    #: Exception types the core retries (transient: connection reset,
    #: timeout, leader change). Usually set in ``__init__`` once the client
    #: library is imported.
    retryable_errors: tuple[type[BaseException], ...] = ()
    #: Exception types raised only when the request never left the client
    #: (connection refused): ``add`` is retried for these, and only these.
    unsent_errors: tuple[type[BaseException], ...] = (ConnectionRefusedError,)
    #: Every exception type the client library raises; those that are not
    #: retryable (bad password, TLS failure) fail fast with a clear message.
    #: The core maps errors escaping ``from_params`` by the *class* attribute
    #: (OSError and RuntimeError are always mapped): an adapter whose client
    #: raises other types while connecting declares them on the class too.
    client_errors: tuple[type[BaseException], ...] = ()

    @classmethod
    @abstractmethod
    def from_params(cls, params: RendezvousParameters) -> StateStore:
        """Parse ``params.endpoint`` and the adapter's conf keys, then connect.

        Raise ``ValueError`` naming the offending key or endpoint for bad
        input; the core adds the backend name and re-raises it as a
        configuration error. A ``ConnectionError``, ``TimeoutError`` or one
        of the class's ``retryable_errors`` makes the core call this again,
        with backoff, until ``connect_timeout``; any other error fails at
        once (raise a non-retryable type for a refused login or a TLS failure).
        """

    @property
    @abstractmethod
    def endpoint(self) -> str:
        """A human-readable description of where the store is (for errors)."""

    # -- primitives -----------------------------------------------------------

    @abstractmethod
    def read(self, key: str) -> Versioned | None:
        """Return the value and version token of ``key``, or ``None``."""

    @abstractmethod
    def cas(self, key: str, token: Token | None, value: bytes) -> CasResult:
        """Atomically replace ``key`` if its version is still ``token``.

        ``token=None`` creates the key only if it does not exist.
        """

    @abstractmethod
    def write(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Unconditionally set ``key``; with ``ttl`` it expires after that many
        seconds (adapters with ``supports_ttl = False`` may ignore it)."""

    @abstractmethod
    def add(self, key: str, amount: int) -> int:
        """Atomically add ``amount`` to the counter at ``key`` (missing = 0)
        and return the new value."""

    def increment(self, key: str) -> int:
        """Atomically add 1 to the counter at ``key`` (missing = 0) and return
        the new value: 1, 2, 3, ... to concurrent callers, each number once.

        What the scalable protocol counts with (tickets, returners, deaths).
        ``read``/``read_many`` of the key return the count as ASCII digits,
        as for ``add``; a key is counted either with ``increment`` or with
        ``add``, never both. The fallback is ``add(key, 1)``; adapters whose
        ``add`` costs more under contention (etcd's is a compare-and-put
        loop: K concurrent callers cost O(K²) transactions) implement it in
        one round trip.
        """
        return self.add(key, 1)

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Delete ``key``; return whether it existed."""

    @abstractmethod
    def count(self, prefix: str) -> int:
        """Return how many keys of this run start with ``prefix``."""

    def close(self) -> None:
        """Release the client's connections. Idempotent."""

    def after_fork(self) -> None:
        """Drop connections inherited from the parent process.

        The core calls this in a child process before its first operation
        there; adapters whose client is not fork-safe reconnect here.
        """

    # -- optional primitives with generic fallbacks ----------------------------

    def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Return the values of ``keys`` (``None`` for missing ones)."""
        values: list[bytes | None] = []
        for key in keys:
            found = self.read(key)
            values.append(found.value if found is not None else None)
        return values

    def wait(self, keys: Sequence[str], timeout: float) -> bool:
        """Block until every key in ``keys`` exists or ``timeout`` seconds pass.

        Returns whether all keys exist. ``timeout <= 0`` checks once and never
        blocks (the core's ``exists``). This fallback polls with exponential
        backoff (5 ms doubling to 200 ms); adapters with watch/notify override
        it so that waiters wake as soon as the key is written.
        """
        return poll_until(lambda: all(value is not None for value in self.read_many(keys)), timeout)

    def wait_read(self, key: str, timeout: float) -> bytes | None:
        """Block until ``key`` exists or ``timeout`` seconds pass; return a
        value the key held at some moment during the call, or ``None``.

        What a waiter for a write-once key (a round's seal) needs: the value,
        not only the news that it exists. The fallback is :meth:`wait` then
        :meth:`read`; adapters whose wake-up already carries the value (a
        Redis Pub/Sub message, an etcd watch event) return it without that
        extra round trip.
        """
        if not self.wait([key], timeout):
            return None
        found = self.read(key)
        return found.value if found is not None else None

    def native_store(self) -> dist.Store | None:
        """Return the store's own ``torch.distributed.Store``, if it has one.

        For c10d stores this is the TCPStore/FileStore itself; every other
        adapter returns ``None`` and the core builds a bridge Store from the
        primitives above.
        """
        return None

    # -- administration (the operator's ``rdzv runs`` / ``rdzv purge``) ---------------

    def list_keys(self, prefix: str = "") -> list[str]:
        """This run's keys (relative) that start with ``prefix``.

        Optional: adapters whose store can list keys implement it; this
        default raises ``NotImplementedError``, and ``rdzv runs``/``purge``
        then say that this backend cannot list a run's keys.
        """
        raise NotImplementedError(f"the '{self.name}' adapter cannot list a run's keys (it has no list_keys())")

    def run_ids(self) -> list[str]:
        """The ids of every run whose keys this store holds (under this
        adapter's key prefix), whatever run this instance was made for.

        Optional, like :meth:`list_keys` (the default raises ``NotImplementedError``).
        """
        raise NotImplementedError(f"the '{self.name}' adapter cannot list the runs of its store (it has no run_ids())")

    def purge(self) -> int:
        """Delete every key of this run, the adapter's own bookkeeping
        included; return how many keys were deleted.

        The default deletes each key :meth:`list_keys` returns, one by one.
        Adapters with bookkeeping keys outside the run's relative keys (or a
        faster bulk delete) override it.
        """
        return sum(1 for key in self.list_keys("") if self.delete(key))

    # -- diagnosis (the operator's ``rdzv doctor``) ------------------------------------

    @classmethod
    def network_targets(cls, params: RendezvousParameters) -> list[NetworkTarget]:
        """Where this adapter would connect for ``params``, without connecting:
        each host and port, with the TLS settings it would use there.

        Optional: ``rdzv doctor`` resolves, connects to and (with TLS)
        handshakes with each target before the adapter connects. Raise
        ``ValueError`` for a bad endpoint or conf key, as :meth:`from_params`
        does. The default returns ``[]``: doctor then says that it cannot
        check the network path of this backend.
        """
        return []

    def diagnose(self) -> list[Check]:
        """Store-specific checks of this connected adapter, for ``rdzv doctor``:
        the server's version and capabilities, and the permissions the adapter
        needs, each exercised on scratch keys of the run (deleted again).

        Optional (the default returns ``[]``). Never raises for a failed
        check: return a FAIL :class:`~rdzv_core.doctor.checks.Check` naming
        what is missing and how to fix it. The core adds the generic checks
        (endpoint, DNS, TCP, TLS, connecting, latency, this node's own side).
        """
        return []
