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

An adapter declares which version of this contract it was written for
(:attr:`StateStore.contract_version`, checked against
:data:`CONTRACT_VERSION` when the plugin loads) and which optional
primitives it implements (:attr:`StateStore.capabilities`, a
:class:`Capabilities` record checked against the methods it overrides).
:meth:`StateStore.from_params` receives the core's parsed settings
(:class:`~rdzv_core.settings.CoreSettings`): timeouts, the run's identity
and a :class:`~rdzv_core.config.ConfReader` for the adapter's own keys.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from rdzv_core.retry import poll_until

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch.distributed as dist
    from torch.distributed.elastic.rendezvous import RendezvousParameters

    from rdzv_core.doctor.checks import Check, NetworkTarget
    from rdzv_core.settings import CoreSettings

#: The version of this contract: ``(major, minor)``. A new minor adds
#: optional members (an adapter written for 1.0 runs on a 1.3 core); a new
#: major changes what existing adapters must do. An adapter declares the
#: version it was written for in :attr:`StateStore.contract_version`.
CONTRACT_VERSION: tuple[int, int] = (1, 0)

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


@dataclass(frozen=True)
class Capabilities:
    """The optional parts of the contract an adapter implements.

    Every field but ``ttl`` names an optional method of :class:`StateStore`:
    declared ``True``, the adapter overrides it; left ``False``, it keeps the
    generic fallback (or, for ``list_keys``/``run_ids``, none: the operator's
    commands say the backend cannot list). ``ttl``: ``write(..., ttl=...)``
    expires keys natively. The core refuses, when the plugin loads, an
    adapter whose record and overridden methods disagree (see
    :func:`capability_problems`). New optional members become new fields
    with a ``False`` default, so existing adapters stay valid.
    """

    read_many: bool = False
    wait: bool = False
    wait_read: bool = False
    increment: bool = False
    native_store: bool = False
    list_keys: bool = False
    run_ids: bool = False
    purge: bool = False
    ttl: bool = False

    def declared(self) -> tuple[str, ...]:
        """The names of the capabilities declared ``True``, in field order."""
        return tuple(f.name for f in fields(self) if getattr(self, f.name))

    @staticmethod
    def method_names() -> tuple[str, ...]:
        """The capabilities that are methods of :class:`StateStore` (all but ``ttl``)."""
        return tuple(f.name for f in fields(Capabilities) if f.name != "ttl")


class StateStore(ABC):
    """Abstract base class of every rdzv adapter (one instance per run).

    Subclasses set :attr:`name` and :attr:`contract_version`, implement the
    abstract primitives and :meth:`from_params`, and may override the
    optional ones (``read_many``, ``wait``, ``wait_read``, ``increment``,
    ``native_store``, ``list_keys``, ``run_ids``, ``purge``) where the store
    does better than the generic fallbacks written here, declaring each in
    :attr:`capabilities`.
    """

    #: The backend name users pass to ``--rdzv-backend`` (``"redis"``).
    name: ClassVar[str] = ""
    #: The contract version this adapter was written for; ``None`` (not
    #: declared) is refused at load, as is a different major version or a
    #: newer minor than :data:`CONTRACT_VERSION`.
    contract_version: ClassVar[tuple[int, int] | None] = None
    #: The optional primitives this adapter implements.
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: ``--rdzv-conf`` keys this adapter understands, beyond the core's own.
    conf_keys: ClassVar[frozenset[str]] = frozenset()

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
    def from_params(cls, params: RendezvousParameters, core: CoreSettings) -> StateStore:
        """Parse ``params.endpoint`` and the adapter's conf keys, then connect.

        ``core`` holds what the core has already parsed and validated, once,
        for every adapter: the run id, ``read_timeout``/``connect_timeout``,
        and ``core.conf``, the shared :class:`~rdzv_core.config.ConfReader`
        through which the adapter reads its own keys (``conf_keys``; unknown
        keys were rejected before this call): typed values, secrets and
        passwords from a file or an environment variable, the username, a
        key prefix and the TLS file trio, each with the same rules and
        errors. Read nothing from ``params.config`` directly.

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
        seconds (adapters that do not declare ``Capabilities.ttl`` may ignore it)."""

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
    def network_targets(cls, params: RendezvousParameters, core: CoreSettings) -> list[NetworkTarget]:
        """Where this adapter would connect for ``params`` (``core``: the core's
        settings parsed from them, as :meth:`from_params` gets), without connecting:
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


def contract_problem(declared: object, core: tuple[int, int] = CONTRACT_VERSION) -> str | None:
    """Why an adapter declaring contract ``declared`` cannot run on a core of
    contract ``core`` (``None``: it can). Pure."""
    shown = ".".join(str(n) for n in core)
    if declared is None:
        return f"declares no contract_version (rdzv-core speaks contract {shown}; adapters written before 1.0 need porting)"
    if not (isinstance(declared, tuple) and len(declared) == 2 and all(isinstance(n, int) for n in declared)):
        return f"contract_version={declared!r} is not a (major, minor) pair of integers"
    wanted = f"{declared[0]}.{declared[1]}"
    if declared[0] != core[0]:
        return f"is written for contract {wanted}, but this rdzv-core speaks contract {shown} (major versions differ)"
    if declared[1] > core[1]:
        return f"needs contract {wanted}, but this rdzv-core speaks contract {shown} (upgrade rdzv-core)"
    return None


def capability_problems(adapter: type[StateStore]) -> list[str]:
    """Where ``adapter``'s :attr:`~StateStore.capabilities` and the methods
    it overrides disagree (empty: they agree). Pure."""
    record = adapter.capabilities
    if not isinstance(record, Capabilities):
        return [f"capabilities={record!r} is not a rdzv_core.adapter.Capabilities record"]
    problems = []
    for name in Capabilities.method_names():
        overridden = getattr(adapter, name) is not getattr(StateStore, name)
        if getattr(record, name) and not overridden:
            problems.append(f"declares capability '{name}' but does not implement {name}()")
        elif overridden and not getattr(record, name):
            problems.append(f"implements {name}() but does not declare it in capabilities")
    return problems
