"""One etcd member's gRPC channel: opened lazily, its connectivity, fork safety.

Importing this module turns gRPC's fork support on before gRPC loads (see
below); every module of this package that imports gRPC imports it first.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

# gRPC survives fork() only with its fork support on, which it reads once at
# import (if something imported gRPC before us, that import decided): without
# it a forked child that opens a channel can hang or crash while the parent
# has gRPC threads running. Turn it on unless the user chose.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "true")

import grpc  # noqa: E402

from rdzv_etcd.settings import Target, TlsMaterial  # noqa: E402

#: Reconnect quickly after a member comes back. (gRPC also uses
#: ``min_reconnect_backoff_ms`` as the handshake deadline: it is set per
#: client from ``connect_timeout``, never to something short.)
_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 10_000),  # etcd refuses pings more often than every 5 s
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]
_C = grpc.ChannelConnectivity
#: Channels inherited across ``fork``: kept alive, never used (see ``Member.forget``).
_ABANDONED: list[object] = []


class Member:
    """One cluster member: a lazily opened channel and its connectivity."""

    def __init__(self, target: Target, credentials: grpc.ChannelCredentials | None, connect_timeout: float) -> None:
        self.target = target
        # A little past connect_timeout, so that our own wait decides (and says so).
        self._options = [*_OPTIONS, ("grpc.min_reconnect_backoff_ms", int(max(1.0, connect_timeout) * 1000) + 1000)]
        self.label = str(target)
        self._credentials = credentials
        self._cond = threading.Condition()
        self._channel: grpc.Channel | None = None
        self._state: _C | None = None
        self._was_ready = False
        self._stubs: dict[str, Any] = {}

    def _on_state(self, state: _C) -> None:
        with self._cond:
            self._state = state
            self._was_ready = self._was_ready or state == _C.READY
            self._cond.notify_all()

    def _open(self) -> grpc.Channel:
        with self._cond:
            if self._channel is None:
                if self._credentials is not None:
                    self._channel = grpc.secure_channel(self.target.netloc, self._credentials, options=self._options)
                else:
                    self._channel = grpc.insecure_channel(self.target.netloc, options=self._options)
            return self._channel

    def stub(self, kind: Callable[[grpc.Channel], Any]) -> Any:
        """The stub of class ``kind`` on this member's channel (opened on first use)."""
        stub = self._stubs.get(kind.__name__)  # lock-free hit: the dict is only ever replaced whole
        if stub is not None:
            return stub
        with self._cond:  # an RLock: _open() re-enters it; a concurrent close() cannot interleave
            stub = self._stubs.get(kind.__name__)
            if stub is None:
                stub = self._stubs[kind.__name__] = kind(self._open())
            return stub

    def settle(self, timeout: float) -> _C | None:
        """Until the first connection: wait up to ``timeout`` s for it to be READY or to
        fail. Once a connection was READY, return at once: calls report failures then.

        Connectivity is watched only while waiting (gRPC polls it with a thread per
        subscribed channel), so an idle client costs no background work.
        """
        if self._was_ready and self._channel is not None:
            return _C.READY  # the common case, without taking the lock
        channel = self._open()
        with self._cond:
            if self._was_ready:
                return _C.READY
            self._state = None
        channel.subscribe(self._on_state, try_to_connect=True)
        try:
            end = time.monotonic() + timeout
            with self._cond:
                while not self._was_ready and self._state not in (_C.TRANSIENT_FAILURE, _C.SHUTDOWN):
                    left = end - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                return _C.READY if self._was_ready else self._state
        finally:
            channel.unsubscribe(self._on_state)

    def close(self) -> None:
        """Close the channel (the member can be used again; it reconnects)."""
        with self._cond:
            channel, self._channel, self._state, self._stubs = self._channel, None, None, {}
            self._was_ready = False
        if channel is not None:
            channel.close()

    def forget(self) -> None:
        """Abandon the channel untouched (after ``fork``). It is parked in :data:`_ABANDONED`:
        collecting it would run ``close()``, which in a child can block on a lock a parent thread held."""
        if self._channel is not None:
            _ABANDONED.append((self._channel, self._stubs))
        self._cond = threading.Condition()
        self._channel, self._state, self._stubs, self._was_ready = None, None, {}, False


def credentials_for(tls: TlsMaterial | None, any_tls: bool) -> grpc.ChannelCredentials | None:
    """The channel credentials of a client whose members speak TLS (``any_tls``), else ``None``."""
    if not any_tls:
        return None
    tls = tls or TlsMaterial()
    return grpc.ssl_channel_credentials(root_certificates=tls.cacert, private_key=tls.key, certificate_chain=tls.cert)
