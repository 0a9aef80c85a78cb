"""The etcd v3 gRPC client: the only module that sends etcd requests.

It uses the v3 API stubs that ``etcd-sdk-python`` (``pyetcd``) ships and
adds what a rendezvous needs from a client and that library's high-level
client lacks: one thread-safe client over several members with failover that
never sends a write twice, per-call time budgets, a refreshed auth token,
``hasleader`` on every call (a member cut off from the leader answers "no
leader" at once instead of stalling), and errors that keep gRPC's reason.
Everything it raises is an :mod:`rdzv_etcd.errors` type, and it speaks in
:mod:`rdzv_etcd.ops` values, so swapping the client library means rewriting
this module, :mod:`rdzv_etcd.channels` (a member's channel) and
:mod:`rdzv_etcd.messages` (requests and errors as protobuf and gRPC see them).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterator, Sequence

from rdzv_etcd.channels import Member, credentials_for  # first: sets gRPC's fork support

import grpc  # noqa: E402, I001
from pyetcd import etcdrpc  # noqa: E402

from rdzv_etcd.errors import AUTH_HINT, EtcdAuthError, EtcdError, EtcdRequestError, EtcdTimeout, EtcdUnavailable
from rdzv_etcd.keys import prefix_range_end
from rdzv_etcd.messages import fill_compare, fill_op, op_result, translate
from rdzv_etcd.ops import Get, KeyValue, Op, RevisionIs, TxnResult
from rdzv_etcd.settings import Target, TlsMaterial
from rdzv_etcd.watches import WatchHub

log = logging.getLogger(__name__)
_C = grpc.ChannelConnectivity


class EtcdClient:
    """A thread-safe etcd v3 client over a list of members with failover.

    Calls go to the current member. A member that cannot be reached within
    ``connect_timeout`` (nothing was sent) is skipped at once for the next
    one, so a dead first endpoint costs no failure. A call that may have
    reached a member and then failed is retried on the next member only when
    it is idempotent (reads); otherwise the error is raised (``EtcdUnavailable``
    or ``EtcdTimeout``) and the current member moves on for the next call.
    Every call is bounded by ``rpc_timeout`` and by its caller's ``budget``.
    """

    def __init__(self, targets: Sequence[Target], tls: TlsMaterial | None = None, username: str | None = None,
                 password: str | None = None, connect_timeout: float = 10.0, rpc_timeout: float = 20.0) -> None:
        credentials = credentials_for(tls, any(t.tls for t in targets))
        self._members = [Member(t, credentials, connect_timeout) for t in targets]
        self._username, self._password = username, password
        self.connect_timeout, self.rpc_timeout = connect_timeout, rpc_timeout
        self._lock = threading.Lock()
        self._current = 0
        self._token: str | None = None
        self._metadata_for: tuple[str | None, tuple[tuple[str, str], ...]] = (None, (("hasleader", "true"),))
        self._watches = WatchHub(self)

    @property
    def label(self) -> str:
        """Every member, comma-separated (for messages)."""
        return ",".join(m.label for m in self._members)

    # -- plumbing ---------------------------------------------------------------------

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        token = self._token
        cached = self._metadata_for
        if cached[0] != token:  # built once per auth token, replaced as a whole
            cached = (token, (("hasleader", "true"),) + ((("token", token),) if token else ()))
            self._metadata_for = cached
        return cached[1]

    def _advance(self, index: int) -> None:
        with self._lock:
            if self._current == index:
                self._current = (index + 1) % len(self._members)

    def _call(self, stub: Callable[[grpc.Channel], Any], method: str, request: Any, *, idempotent: bool,
              budget: float | None = None, stream: bool = False) -> Any:
        """Send one RPC with failover; see the class docstring for the rules."""
        deadline = time.monotonic() + (budget if budget is not None else self.rpc_timeout * 3)
        n = len(self._members)
        start, failures, reauthed, tried = self._current, [], False, 0
        while tried < n:
            index = (start + tried) % n
            member = self._members[index]
            left = deadline - time.monotonic()
            if left <= 0:
                break
            state = member.settle(min(self.connect_timeout, left))
            if state not in (_C.READY, _C.TRANSIENT_FAILURE):
                failures.append(EtcdUnavailable(
                    f"{member.label}: no connection within {min(self.connect_timeout, left):.3g} s "
                    "(is the host reachable, and is this an etcd client port?)", member.label,
                    unsent=True))
                self._advance(index)
                tried += 1
                continue
            token = self._token
            try:
                rpc = getattr(member.stub(stub), method)
                timeout = min(self.rpc_timeout, max(deadline - time.monotonic(), 0.001))
                if stream:
                    return rpc(iter([request]), timeout=timeout, metadata=self._metadata())
                response = rpc(request, timeout=timeout, metadata=self._metadata())
                if self._current != index:
                    with self._lock:
                        self._current = index
                return response
            except grpc.RpcError as exc:
                error = translate(exc, member.label)
            if isinstance(error, EtcdAuthError) and "invalid auth token" in str(error) and not reauthed:
                reauthed = True
                self._authenticate(member, stale=token)
                continue  # the same member, with a fresh token
            if not isinstance(error, (EtcdUnavailable, EtcdTimeout)):
                raise error
            self._advance(index)
            if not (idempotent or (isinstance(error, EtcdUnavailable) and error.unsent)):
                raise error
            failures.append(error)
            tried += 1
        reasons = "; ".join(str(f) for f in failures) or "the time budget ran out"
        raise EtcdUnavailable(
            f"no etcd member answered ({self.label}): {reasons}", self.label,
            unsent=bool(failures) and all(getattr(f, "unsent", False) for f in failures))

    def _authenticate(self, member: Member, stale: str | None = None) -> None:
        if self._username is None:
            return
        with self._lock:
            if self._token != stale:
                return  # another thread already refreshed it
        request = etcdrpc.AuthenticateRequest(name=self._username, password=self._password or "")
        try:
            response = member.stub(etcdrpc.AuthStub).Authenticate(
                request, timeout=self.rpc_timeout, metadata=[("hasleader", "true")])
        except grpc.RpcError as exc:
            error = translate(exc, member.label)
            if "authentication is not enabled" in str(error):
                log.warning("etcd at %s: authentication is not enabled; ignoring username %r", member.label,
                            self._username)
                return
            if error.code == "INVALID_ARGUMENT":
                error = EtcdAuthError(
                    f"etcd at {member.label}: authentication failed for user {self._username!r}: "
                    f"{exc.details()} ({AUTH_HINT})", member.label, error.code)  # type: ignore[attr-defined]
            raise error from None
        with self._lock:
            self._token = response.token

    # -- connection -------------------------------------------------------------------

    def connect(self, budget: float, probe_prefix: bytes) -> str:
        """Reach one member, authenticate, check that it is etcd v3 and that
        we may read ``probe_prefix``.

        Returns "member (etcd version)". Raises ``EtcdUnavailable`` naming
        every member and why it failed when none answers, or ``EtcdAuthError``
        for bad credentials or missing permissions.
        """
        response = self._call(etcdrpc.MaintenanceStub, "Status", etcdrpc.StatusRequest(),
                              idempotent=True, budget=budget)
        member = self._members[self._current]
        if self._username is not None:
            self._authenticate(member, stale=self._token)
        # With auth on and no (or a wrong) token this read fails fast and says why.
        self.range_count(probe_prefix, budget=budget)
        return f"{member.label} (etcd {response.version})"

    def close(self) -> None:
        """Close the watch stream and every channel. The client reconnects if used again."""
        self._watches.close()
        for member in self._members:
            member.close()

    def forget_connections(self) -> None:
        """Drop inherited channels without using them (call in a forked child)."""
        self._lock = threading.Lock()
        self._watches.forget()
        for member in self._members:
            member.forget()

    # -- KV ---------------------------------------------------------------------------

    def get(self, key: bytes, budget: float | None = None, revision: int = 0) -> tuple[KeyValue | None, int]:
        """The key (or ``None``) and the store revision it was read at (now,
        or as it was at ``revision``)."""
        request = etcdrpc.RangeRequest(key=key, revision=revision)
        response = self._call(etcdrpc.KVStub, "Range", request, idempotent=True, budget=budget)
        return (KeyValue.of(response.kvs[0]) if response.kvs else None), response.header.revision

    def get_many(self, keys: Sequence[bytes], budget: float | None = None) -> tuple[list[KeyValue | None], int]:
        """Several keys read at one revision (one read-only transaction)."""
        result = self.txn([], [Get(k) for k in keys], [], budget=budget, idempotent=True)
        return [r if isinstance(r, KeyValue) else None for r in result.results], result.revision

    def range_count(self, prefix: bytes, budget: float | None = None) -> int:
        """How many keys start with ``prefix`` (a count-only range)."""
        request = etcdrpc.RangeRequest(key=prefix, range_end=prefix_range_end(prefix), count_only=True)
        return int(self._call(etcdrpc.KVStub, "Range", request, idempotent=True, budget=budget).count)

    def range_prefix(self, prefix: bytes, budget: float | None = None) -> list[KeyValue]:
        """Every key that starts with ``prefix``, with its value (for the operator's commands)."""
        request = etcdrpc.RangeRequest(key=prefix, range_end=prefix_range_end(prefix))
        return [KeyValue.of(kv) for kv in self._call(etcdrpc.KVStub, "Range", request, idempotent=True, budget=budget).kvs]

    def delete_prefix(self, prefix: bytes, budget: float | None = None) -> int:
        """Delete every key that starts with ``prefix``; return how many were deleted."""
        request = etcdrpc.DeleteRangeRequest(key=prefix, range_end=prefix_range_end(prefix))
        return int(self._call(etcdrpc.KVStub, "DeleteRange", request, idempotent=True, budget=budget).deleted)

    def put(self, key: bytes, value: bytes, lease: int = 0, budget: float | None = None) -> int:
        """Set ``key``; return the new revision."""
        request = etcdrpc.PutRequest(key=key, value=value, lease=lease)
        return int(self._call(etcdrpc.KVStub, "Put", request, idempotent=False, budget=budget).header.revision)

    def delete(self, key: bytes, budget: float | None = None) -> int:
        """Delete ``key``; return how many keys were deleted (0 or 1)."""
        request = etcdrpc.DeleteRangeRequest(key=key)
        return int(self._call(etcdrpc.KVStub, "DeleteRange", request, idempotent=False, budget=budget).deleted)

    def txn(self, compare: Sequence[RevisionIs], success: Sequence[Op], failure: Sequence[Op],
            budget: float | None = None, idempotent: bool = False) -> TxnResult:
        """One atomic transaction: ``success`` ops if every compare holds, else ``failure`` ops."""
        request = etcdrpc.TxnRequest()
        for cmp in compare:
            fill_compare(request.compare.add(), cmp)
        for op in success:
            fill_op(request.success.add(), op)
        for op in failure:
            fill_op(request.failure.add(), op)
        response = self._call(etcdrpc.KVStub, "Txn", request, idempotent=idempotent, budget=budget)
        ops = success if response.succeeded else failure
        results = tuple(op_result(op, r) for op, r in zip(ops, response.responses))
        return TxnResult(bool(response.succeeded), int(response.header.revision), results)

    # -- leases -----------------------------------------------------------------------

    def lease_grant(self, ttl: int, budget: float | None = None) -> int:
        """A new lease of ``ttl`` whole seconds; returns its id."""
        response = self._call(etcdrpc.LeaseStub, "LeaseGrant", etcdrpc.LeaseGrantRequest(TTL=ttl),
                              idempotent=True, budget=budget)
        if response.error:
            raise EtcdRequestError(f"etcd at {self.label}: lease grant failed: {response.error}", self.label)
        return int(response.ID)

    def lease_keepalive(self, lease: int, budget: float | None = None) -> int:
        """Renew ``lease`` once; return its TTL now (0 when it has expired)."""
        token = self._token
        responses = self._call(etcdrpc.LeaseStub, "LeaseKeepAlive", etcdrpc.LeaseKeepAliveRequest(ID=lease),
                               idempotent=True, budget=budget, stream=True)
        try:
            return int(next(iter(responses)).TTL)
        except grpc.RpcError as exc:
            raise self._stream_error(exc, self._current, token) from None
        except StopIteration:
            raise EtcdUnavailable(f"etcd at {self.label}: lease keep-alive stream closed", self.label) from None
        finally:
            responses.cancel()

    def _stream_error(self, exc: grpc.RpcError, index: int, token: str | None) -> EtcdError:
        """Classify a failed stream; an expired token is renewed and reported as transient."""
        member = self._members[index]
        error = translate(exc, member.label)
        if isinstance(error, EtcdAuthError) and "invalid auth token" in str(error):
            self._authenticate(member, stale=token)
            return EtcdUnavailable(f"{error} (token renewed; retry)", member.label, error.code)
        if isinstance(error, (EtcdUnavailable, EtcdTimeout)):
            self._advance(index)
        return error

    # -- watch ------------------------------------------------------------------------

    def watch(self, keys: Sequence[bytes], start_revision: int,
              timeout: float) -> Iterator[list[tuple[bool, KeyValue]]]:
        """Yield batches of ``(is_put, key as written)`` events on ``keys`` from ``start_revision``
        on, until ``timeout`` seconds pass (then the iterator just ends), on this client's one
        shared Watch stream (:mod:`rdzv_etcd.watches`). Starting at the revision after a read
        means no change after that read is missed. More than a few keys are watched as one range
        from the first to the last (events on other keys in it are yielded too). Raises
        ``EtcdUnavailable`` when the stream breaks or the server cancels the watch (compaction,
        lost leader)."""
        return self._watches.watch(keys, start_revision, timeout, self._members[self._current].label)

    def watch_target(self) -> tuple[int, str | None]:
        """See :class:`rdzv_etcd.watches.StreamOpener`."""
        return self._current, self._token

    def open_watch_stream(self, requests: Iterator[Any]) -> tuple[Any, int, str | None, str]:
        """See :class:`rdzv_etcd.watches.StreamOpener` (no deadline: the stream lives on)."""
        index, token = self._current, self._token
        member = self._members[index]
        return member.stub(etcdrpc.WatchStub).Watch(requests, metadata=self._metadata()), index, token, member.label

    def watch_stream_error(self, exc: grpc.RpcError, index: int, token: str | None) -> EtcdError:
        """See :class:`rdzv_etcd.watches.StreamOpener`."""
        return self._stream_error(exc, index, token)
