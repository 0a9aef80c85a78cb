"""The etcd v3 adapter: rdzv's primitives over an etcd cluster.

* ``read`` is one linearizable range; the version token is the key's
  ``mod_revision``.
* ``cas`` is one transaction: compare ``mod_revision == token`` (or
  ``create_revision == 0`` to create), put on success, read the key on
  failure, so a lost race costs no second round trip.
* ``add`` is a compare-and-put loop on the counter that also creates a
  one-off *receipt* key in the same transaction (and only if the receipt
  does not exist yet). A reply lost to a leader change is settled by reading
  the receipt: the add is applied exactly once, and it survives failover
  instead of reporting "outcome unknown".
* ``increment`` (the protocol's tickets and counters) is one transaction
  without a compare: the count is the key's etcd ``version``, so K
  concurrent callers cost K transactions, not O(K²).
* ``wait`` and ``wait_read`` read the keys, then watch them from the
  revision after that read: a write that lands between the read and the
  watch is still seen, and a put event carries the value.
* Keys are attached to leases (:mod:`rdzv_etcd.leases`) so an abandoned
  run's keys disappear by themselves.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable, Iterator, Sequence, TypeVar

from rdzv_core.adapter import CONTRACT_VERSION, Capabilities, CasResult, StateStore, Token, Versioned
from rdzv_core.retry import Deadline, apply_once

from rdzv_etcd import sharing
from rdzv_etcd.errors import EtcdError, EtcdRequestError, EtcdTimeout, EtcdUnavailable, LeaseNotFound
from rdzv_etcd.keys import KeySpace
from rdzv_etcd.ops import Get, KeyValue, Put, RevisionIs
from rdzv_etcd.settings import CONF_KEYS, EtcdSettings

if TYPE_CHECKING:  # pragma: no cover
    from torch.distributed.elastic.rendezvous import RendezvousParameters

    from rdzv_core.doctor.checks import Check, NetworkTarget

    from rdzv_core.settings import CoreSettings
    from rdzv_etcd.client import EtcdClient
    from rdzv_etcd.leases import LeaseKeeper

log = logging.getLogger(__name__)
T = TypeVar("T")
#: etcd refuses transactions with more than 128 operations by default.
_MAX_TXN_OPS = 64


#: The value of a key counted with ``increment``: the count is the key's
#: ``version`` (etcd counts every put of a key since its creation), so the
#: value carries nothing; reads return the version instead.
COUNTED = b"\0rdzv-counted"


def value_of(kv: KeyValue | None) -> bytes | None:
    """What a read returns for ``kv``: its value, or the count of a key
    counted with ``increment`` (``None`` for a missing key)."""
    if kv is None:
        return None
    value = bytes(kv.value)
    return str(kv.version).encode() if value == COUNTED else value


def rpc_timeout_for(read_timeout: float) -> float:
    """How long one gRPC call may take: a third of ``read_timeout`` (at least
    1 s, at most ``read_timeout``), so a hung member leaves time to fail over."""
    return min(read_timeout, max(1.0, read_timeout / 3))


class EtcdStateStore(StateStore):
    """rdzv adapter over an etcd v3 cluster (gRPC API).

    Conf keys: ``username``, ``password_file`` (or ``$RDZV_ETCD_PASSWORD``),
    ``cacert``, ``cert``, ``key``, ``key_prefix`` (default ``/rdzv``),
    ``ttl`` (seconds, default 7200), plus the core's ``read_timeout`` and
    ``connect_timeout``, which also bound the client's calls.
    """

    name = "etcd"
    contract_version = CONTRACT_VERSION
    capabilities = Capabilities(read_many=True, wait=True, wait_read=True, increment=True, list_keys=True,
                                run_ids=True, purge=True, ttl=True)
    conf_keys = CONF_KEYS
    # Declared on the class too (the types are pure Python): the core maps
    # errors raised by ``from_params`` before any instance exists, and retries
    # these until connect_timeout.
    retryable_errors: tuple[type[BaseException], ...] = (EtcdUnavailable, EtcdTimeout)
    client_errors: tuple[type[BaseException], ...] = (EtcdError,)

    def __init__(self, settings: EtcdSettings, client: EtcdClient, shared: bool = False) -> None:
        self.settings = settings
        self._client = client
        self._shared = shared  # holds a use of the process's shared client (see sharing.py)
        self._keys = KeySpace(settings.key_prefix, settings.run_id)
        self._leases: LeaseKeeper = sharing.leases(_sharing_key(settings), client, settings.ttl)
        self._budget = settings.timeouts.read
        self.retryable_errors = (EtcdUnavailable, EtcdTimeout)
        self.client_errors = (EtcdError,)

    # -- construction ---------------------------------------------------------------

    @classmethod
    def from_params(cls, params: RendezvousParameters, core: CoreSettings) -> EtcdStateStore:
        """Parse the settings, connect to a member, authenticate and check access.

        One attempt, bounded by ``max(connect_timeout, read_timeout)``; every
        error names the endpoint(s). No member reachable, or a connection cut
        (refused, reset, closed), raises ``EtcdUnavailable``, a transient
        error the core retries until ``connect_timeout``. A wrong password or
        missing permission (``EtcdAuthError``), a TLS handshake that fails
        (an untrusted certificate, a refused client certificate) or a port
        that does not speak HTTP/2 (``EtcdRequestError``) raise what no retry
        can fix.
        """
        settings = EtcdSettings.of(core)
        client = sharing.acquire(_sharing_key(settings), lambda: cls._new_client(settings))
        try:
            member = client.connect(max(settings.timeouts.connect, settings.timeouts.read),
                                    KeySpace(settings.key_prefix, settings.run_id).root)
        except BaseException as exc:
            sharing.release(_sharing_key(settings), client)
            if isinstance(exc, EtcdUnavailable) and _cannot_connect_ever(exc):
                raise EtcdRequestError(str(exc), exc.endpoint, exc.code) from exc
            raise
        log.debug("rdzv etcd: connected to %s", member)
        return cls(settings, client, shared=True)

    @classmethod
    def network_targets(cls, params: RendezvousParameters, core: CoreSettings) -> list[NetworkTarget]:
        """See base class (:mod:`rdzv_etcd.diagnose`)."""
        from rdzv_etcd.diagnose import network_targets

        return network_targets(core)

    def diagnose(self) -> list[Check]:
        """See base class: lease grant, txn, watch and delete on a scratch key (:mod:`rdzv_etcd.diagnose`)."""
        from rdzv_etcd.diagnose import diagnose

        return diagnose(self)

    @staticmethod
    def _new_client(settings: EtcdSettings) -> EtcdClient:
        from rdzv_etcd.client import EtcdClient  # gRPC is imported here, never at plugin load

        return EtcdClient(settings.targets, settings.tls, settings.username, settings.password,
                          settings.timeouts.connect, rpc_timeout_for(settings.timeouts.read))

    @property
    def endpoint(self) -> str:
        """See base class: every member, as configured."""
        return f"etcd {self.settings.endpoint_label}"

    def close(self) -> None:
        """Give up this adapter's use of the shared client (the last user closes
        its channels); closing again closes the client's channels. Leases are
        left to expire (see leases.py). A closed adapter reconnects if used."""
        if self._shared:
            self._shared = False
            sharing.release(_sharing_key(self.settings), self._client)
        elif sharing.users(_sharing_key(self.settings)) == 0:
            self._client.close()

    def after_fork(self) -> None:
        """gRPC channels do not survive ``fork``: drop them (unused) and
        reconnect lazily; the child grants its own leases."""
        self._client.forget_connections()
        self._leases.reset()

    # -- helpers ----------------------------------------------------------------------

    def _with_lease(self, call: Callable[[int], T], ttl: float | None = None, key: bytes = b"") -> T:
        """Run ``call(lease)`` with the run lease (or ``key``'s own lease for ``ttl``);
        if the lease vanished meanwhile, take a new one once."""
        for attempt in (0, 1):
            lease = (self._leases.key_lease(key, ttl, self._budget) if ttl is not None
                     else self._leases.run_lease(self._budget))
            try:
                return call(lease)
            except LeaseNotFound:
                self._leases.forget(lease)
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- primitives -------------------------------------------------------------------

    def read(self, key: str) -> Versioned | None:
        """See base class."""
        found, _ = self._client.get(self._keys.key(key), budget=self._budget)
        return None if found is None else Versioned(value_of(found) or b"", found.mod_revision)

    def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """See base class: one read-only transaction per 64 keys."""
        found, _ = self._get_batched([self._keys.key(k) for k in keys], self._budget)
        return [value_of(kv) for kv in found]

    def _get_batched(self, full: Sequence[bytes], budget: float) -> tuple[list[KeyValue | None], list[int]]:
        """The keys, read in transactions of at most 64 (etcd refuses more than
        128 operations in one), and for each key the revision it was read at."""
        found: list[KeyValue | None] = []
        revisions: list[int] = []
        for start in range(0, len(full), _MAX_TXN_OPS):
            chunk, revision = self._client.get_many(full[start : start + _MAX_TXN_OPS], budget=budget)
            found.extend(chunk)
            revisions.extend([revision] * len(chunk))
        return found, revisions

    def cas(self, key: str, token: Token | None, value: bytes) -> CasResult:
        """See base class: one transaction comparing ``mod_revision``."""
        full = self._keys.key(key)
        compare = RevisionIs(full, 0, created=True) if token is None else RevisionIs(full, int(token))

        def attempt(lease: int) -> CasResult:
            result = self._client.txn([compare], [Put(full, value, lease)], [Get(full)], budget=self._budget)
            if result.succeeded:
                return CasResult(value, result.revision, True)
            current = result.results[0]
            if not isinstance(current, KeyValue):
                return CasResult(None, None, False)
            return CasResult(current.value, current.mod_revision, False)

        return self._with_lease(attempt)

    def write(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """See base class; with ``ttl`` the key gets a lease of its own (whole seconds, rounded up)."""
        full = self._keys.key(key)
        self._with_lease(lambda lease: self._client.put(full, value, lease, budget=self._budget), ttl, full)

    def delete(self, key: str) -> bool:
        """See base class."""
        return self._client.delete(self._keys.key(key), budget=self._budget) > 0

    def count(self, prefix: str) -> int:
        """See base class: a count-only range over the prefix."""
        return self._client.range_count(self._keys.key(prefix), budget=self._budget)

    def list_keys(self, prefix: str = "") -> list[str]:
        """See base class: one range over the run's keys under ``prefix``."""
        start = len(self._keys.data)
        return sorted(kv.key[start:].decode(errors="replace")
                      for kv in self._client.range_prefix(self._keys.key(prefix), budget=self._budget))

    def run_ids(self) -> list[str]:
        """See base class: the run segment of every key under ``{key_prefix}/``."""
        from urllib.parse import unquote

        head = f"{self.settings.key_prefix}/".encode()
        found = {kv.key[len(head):].split(b"/", 1)[0] for kv in self._client.range_prefix(head, budget=self._budget)}
        return sorted(unquote(run.decode(errors="replace")) for run in found if run)

    def purge(self) -> int:
        """See base class: one range delete of the run's keys and ``add`` receipts."""
        return self._client.delete_prefix(self._keys.root, budget=self._budget)

    def add(self, key: str, amount: int) -> int:
        """See base class and the module docstring (exactly-once via a receipt
        named by :func:`~rdzv_core.retry.apply_once`'s operation id)."""
        full = self._keys.key(key)

        def attempt(op_id: str, deadline: Deadline) -> int:
            receipt = self._keys.receipt(op_id)
            (current, landed), _ = self._client.get_many([full, receipt], budget=_left(deadline))
            while landed is None:  # a lost race retries at once on the value the transaction returned
                total = _counter(current, full) + amount
                applied, landed, current = self._add_txn(full, receipt, current, total, deadline)
                if applied:
                    return total
            return int(landed.value)

        return apply_once(attempt, self._budget, self.retryable_errors)

    def _add_txn(self, full: bytes, receipt: bytes, current: KeyValue | None, total: int,
                 deadline: Deadline) -> tuple[bool, KeyValue | None, KeyValue | None]:
        """One transaction of ``add``: put ``total`` and the receipt if the
        counter is still ``current`` and the receipt does not exist; else read
        both. Returns (applied, receipt, counter)."""
        compare = [RevisionIs(receipt, 0, created=True),
                   RevisionIs(full, current.mod_revision) if current else RevisionIs(full, 0, created=True)]

        def send(lease: int) -> tuple[bool, KeyValue | None, KeyValue | None]:
            mark = self._leases.receipt_lease(2 * self._budget, self._budget)
            try:
                result = self._client.txn(
                    compare, [Put(full, str(total).encode(), lease), Put(receipt, str(total).encode(), mark)],
                    [Get(receipt), Get(full)], budget=_left(deadline))
            except LeaseNotFound:
                self._leases.forget(mark)  # either lease may be the one that vanished
                raise
            landed, now = (None, None) if result.succeeded else result.results
            return result.succeeded, landed, now  # type: ignore[return-value]

        return self._with_lease(send)

    def increment(self, key: str) -> int:
        """See base class: one transaction, however many callers contend.

        The transaction puts :data:`COUNTED` (no compare: every put
        succeeds, and etcd bumps the key's version by one), creates a one-off
        receipt, and reads the key back: its version is our number. A reply
        lost to a leader change is settled like ``add``'s: the receipt exists
        only if our put landed, and the key's version at the receipt's
        creation revision is our number.
        """
        full = self._keys.key(key)

        def attempt(op_id: str, deadline: Deadline) -> int:
            receipt = self._keys.receipt(op_id)

            def send(lease: int) -> int:
                mark = self._leases.receipt_lease(2 * self._budget, self._budget)
                try:
                    result = self._client.txn(
                        [RevisionIs(receipt, 0, created=True)],
                        [Put(full, COUNTED, lease), Put(receipt, b"", mark), Get(full)], [Get(receipt)],
                        budget=_left(deadline))
                except LeaseNotFound:
                    self._leases.forget(mark)  # either lease may be the one that vanished
                    raise
                counted = result.results[-1] if result.succeeded else None
                if isinstance(counted, KeyValue):
                    return counted.version
                landed = result.results[0]  # the receipt exists: an earlier attempt landed
                assert isinstance(landed, KeyValue)
                then, _ = self._client.get(full, budget=_left(deadline), revision=landed.create_revision)
                assert then is not None
                return then.version

            return self._with_lease(send)

        return apply_once(attempt, self._budget, self.retryable_errors)

    def wait(self, keys: Sequence[str], timeout: float) -> bool:
        """See base class: read, then watch from the next revision (no lost wake-ups)."""
        full = [self._keys.key(k) for k in keys]
        return any(all(v is not None for v in values.values()) for values in self._watched_values(full, timeout))

    def wait_read(self, key: str, timeout: float) -> bytes | None:
        """See base class: read, then watch; a put event carries the value."""
        full = self._keys.key(key)
        seen = (values[full] for values in self._watched_values([full], timeout))
        return next((value for value in seen if value is not None), None)

    def _watched_values(self, full: Sequence[bytes], timeout: float) -> Iterator[dict[bytes, bytes | None]]:
        """The keys' values (``None``: missing) as read now, then again after
        every batch of changes, watched from the revision after that read so
        that no write in between is missed; ends after ``timeout`` s."""
        end = time.monotonic() + timeout
        found, revisions = self._get_batched(full, min(self._budget, max(timeout, 1.0)))
        # Watched from after the first batch's read, so no change is missed; a
        # key's events up to the revision it was read at are already in its value.
        state = {k: (value_of(kv), revision) for k, kv, revision in zip(full, found, revisions)}
        yield {k: value for k, (value, _) in state.items()}
        left = end - time.monotonic()
        if left <= 0:
            return
        for events in self._client.watch(sorted(state), min(revisions, default=0) + 1, left):
            for is_put, kv in events:
                if kv.key in state and kv.mod_revision > state[kv.key][1]:
                    state[kv.key] = (value_of(kv) if is_put else None, kv.mod_revision)
            yield {k: value for k, (value, _) in state.items()}


#: What gRPC reports for a first connection that no retry can fix: a failed
#: TLS handshake (the server certificate is not trusted, the server refused
#: ours, the port does not speak TLS) or a port that does not speak HTTP/2.
#: (A connection closed during the handshake is not among them: a cut
#: connection looks the same.)
_HOPELESS_CONNECT_FAILURES = ("SSL_ERROR_SSL", "CERTIFICATE_VERIFY_FAILED", "Failed parsing HTTP/2")


def _cannot_connect_ever(exc: EtcdUnavailable) -> bool:
    """Whether the unavailable cluster of ``exc`` failed in a way that
    retrying cannot fix (see :data:`_HOPELESS_CONNECT_FAILURES`)."""
    return any(marker in str(exc) for marker in _HOPELESS_CONNECT_FAILURES)


def _sharing_key(settings: EtcdSettings) -> tuple[object, ...]:
    """Adapters with equal keys share one client (:mod:`rdzv_etcd.sharing`)."""
    return (settings.targets, settings.tls, settings.username, settings.password, settings.timeouts.connect,
            rpc_timeout_for(settings.timeouts.read))


def _left(deadline: Deadline) -> float:
    """The time budget of one call within ``deadline`` (at least 50 ms)."""
    return max(deadline.remaining(), 0.05)


def _counter(found: KeyValue | None, key: bytes) -> int:
    if found is None:
        return 0
    try:
        return int(found.value)
    except ValueError:
        raise EtcdRequestError(
            f"key '{key.decode(errors='replace')}' holds {found.value[:40]!r}, not a counter; add() needs a number"
        ) from None
