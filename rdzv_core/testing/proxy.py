"""A TCP proxy that breaks the first connections to a real store.

For tests of what a client does when its first connection fails: put a
:class:`FlakyProxy` on a free loopback port in front of a real server and
point the client at :attr:`FlakyProxy.endpoint`. The proxy can

* refuse connections for the first ``refuse_for`` seconds (the port is bound
  but not listening, so a connect gets ``ECONNREFUSED``, as from a server
  that has not started yet),
* then close (``cut_first``) the first connections it accepts, at once, with
  a TCP reset (``reset=True``) or an orderly close, before a byte reaches
  the server,
* and forward every later connection to the server unchanged, both ways;
* once armed with :meth:`FlakyProxy.cut_reply_of`, pass a request that
  contains a marker on to the server and close the connection instead of
  passing the server's reply back: the request was applied, its reply is
  lost (what a client's retry must survive without applying it twice).

Nothing is mocked: the client talks to the real server through the proxy.
:func:`timed_connect` and :func:`timed_connect_failure` connect the way
torch does (:func:`rdzv_core.handler.connect_adapter`) and time it;
:func:`assert_connects`, :func:`assert_gives_up_after_connect_timeout` and
:func:`assert_fails_at_once` are the checks every adapter's first-connection
tests share.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from rdzv_core.adapter import StateStore
    from rdzv_core.testing.harness import AdapterHarness


class FlakyProxy:
    """Forwards loopback TCP connections to ``upstream``, breaking the first ones.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`).
    ``accepted`` counts the connections accepted, ``cut`` the ones closed
    without forwarding, ``replies_cut`` the replies dropped (see
    :meth:`cut_reply_of`), and ``refused_until`` is the monotonic time at
    which the proxy starts to listen.
    """

    def __init__(self, upstream_host: str, upstream_port: int, cut_first: int = 0, reset: bool = True,
                 refuse_for: float = 0.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.cut_first = cut_first
        self.reset = reset
        self.refuse_for = refuse_for
        self.accepted = 0
        self.cut = 0
        self.replies_cut = 0
        self.refused_until = 0.0
        self._reply_marker = b""
        self._replies_to_cut = 0
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))  # bound, not listening: connects are refused
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        """The loopback port clients connect to."""
        return int(self._server.getsockname()[1])

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT`` of the proxy."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> FlakyProxy:
        """Start the accept loop in a daemon thread."""
        self.refused_until = time.monotonic() + self.refuse_for
        if self.refuse_for <= 0:
            self._listen()  # before start() returns: a client connecting at once is not refused
        self._spawn(self._serve)
        return self

    def stop(self) -> None:
        """Stop accepting and close every connection (idempotent)."""
        self._stop.set()
        with self._lock:
            sockets, self._open = [self._server, *self._open], []
        for sock in sockets:
            _close(sock)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2)

    def cut_reply_of(self, marker: bytes, times: int = 1) -> None:
        """Lose the replies of the next ``times`` requests that contain ``marker``.

        Such a request still reaches the server whole; the first bytes the
        server sends back on that connection are dropped and both sides of
        the connection are shut down and closed. Works for request/response protocols where a
        request fits in one read (a Redis command, not a bulk upload).
        """
        with self._lock:
            self._reply_marker = marker
            self._replies_to_cut = times

    def _claim_reply_cut(self, request: bytes) -> bool:
        """Whether the reply to ``request`` is to be lost (uses up one of :meth:`cut_reply_of`'s)."""
        with self._lock:
            if self._replies_to_cut <= 0 or self._reply_marker not in request:
                return False
            self._replies_to_cut -= 1
            return True

    def __enter__(self) -> FlakyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name="rdzv-test-proxy", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> bool:
        """Remember ``sock`` for :meth:`stop`; ``False`` (and closed) if stopping."""
        with self._lock:
            if not self._stop.is_set():
                self._open.append(sock)
                return True
        _close(sock)
        return False

    def _listen(self) -> None:
        self._server.listen(64)
        self._server.settimeout(0.1)

    def _serve(self) -> None:
        if self.refuse_for > 0:
            if self._stop.wait(self.refuse_for):
                return
            self._listen()
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # closed by stop()
            self.accepted += 1
            if self.cut < self.cut_first:
                self.cut += 1
                self._cut(client)
                continue
            if self._track(client):
                self._spawn(self._forward, client)

    def _cut(self, client: socket.socket) -> None:
        if self.reset:  # SO_LINGER 0: close() sends RST instead of FIN
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()

    def _requests(self, client: socket.socket, server: socket.socket, reply_lost: threading.Event) -> None:
        """Copy the client's requests to the server, marking the connection
        whose reply is to be lost before the request that earns it goes out."""
        _pump(client, server, before_send=lambda data: self._claim_reply_cut(data) and reply_lost.set())

    def _replies(self, server: socket.socket, client: socket.socket, reply_lost: threading.Event) -> None:
        """Copy the server's replies to the client, unless the reply is to be lost:
        then drop it and close both connections."""

        def drop(_data: bytes) -> bool:
            if not reply_lost.is_set():
                return False
            with self._lock:
                self.replies_cut += 1
            _close(client)  # shut down first: that wakes the thread reading requests from it
            _close(server)
            return True

        _pump(server, client, instead_of_send=drop)

    def _forward(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _close(client)
            return
        server.settimeout(None)
        if not self._track(server):
            _close(client)
            return
        reply_lost = threading.Event()
        self._spawn(self._replies, server, client, reply_lost)
        self._requests(client, server, reply_lost)


def timed_connect(harness: AdapterHarness, **conf: Any) -> tuple[StateStore, float]:
    """Connect to a new run through the core, as torch does; the adapter and
    the seconds it took."""
    from rdzv_core.handler import connect_adapter

    started = time.monotonic()
    adapter, _core = connect_adapter(harness.params(**conf), harness.registry())
    return adapter, time.monotonic() - started


def timed_connect_failure(harness: AdapterHarness, **conf: Any) -> tuple[Exception, float]:
    """Like :func:`timed_connect` for a connect that must fail: the error and
    the seconds it took (``AssertionError`` if it connected)."""
    started = time.monotonic()
    try:
        adapter, _took = timed_connect(harness, **conf)
    except Exception as exc:  # noqa: BLE001 - the caller checks what it is
        return exc, time.monotonic() - started
    adapter.close()
    raise AssertionError(f"connected to {harness.endpoint} but should have failed")


def assert_connects(harness: AdapterHarness, within: float, at_least: float = 0.0) -> float:
    """Connect to a new run (see :func:`timed_connect`); assert that it took
    ``at_least`` and less than ``within`` seconds and that the adapter reads
    back what it writes. Closes the adapter; returns the seconds taken."""
    adapter, took = timed_connect(harness)
    try:
        assert at_least <= took < within, f"took {took:.1f} s"
        adapter.write("k", b"v")
        found = adapter.read("k")
        assert found is not None and found.value == b"v"
    finally:
        adapter.close()
    return took


def assert_gives_up_after_connect_timeout(harness: AdapterHarness, last_error: str) -> str:
    """Connect with ``connect_timeout=2`` to ``harness.endpoint``, where
    nothing listens; assert one ``RendezvousConnectionError`` after 2 s (not
    at once, not much later) that names the backend, the endpoint, the
    attempts, the time and the last error, which starts with ``last_error``
    and says "Connection refused". Returns the message."""
    from torch.distributed.elastic.rendezvous import RendezvousConnectionError

    error, took = timed_connect_failure(harness, connect_timeout=2)
    assert isinstance(error, RendezvousConnectionError), error
    assert 1.9 <= took < 3.5, f"took {took:.1f} s: {error}"
    message = str(error)
    assert message.startswith(f"rdzv backend '{harness.backend}': cannot connect to '{harness.endpoint}': "), message
    assert re.search(r": \d+ attempts to connect failed in 2\.\d s, ", message), message
    assert f"connect_timeout=2 s has run out; last error: {last_error}" in message, message
    assert "Connection refused" in message, message
    return message


def assert_fails_at_once(harness: AdapterHarness, error_type: type[Exception], within: float = 2.0,
                         **conf: Any) -> str:
    """Connect (see :func:`timed_connect_failure`); assert that it failed with
    ``error_type`` in less than ``within`` seconds, without retrying. Returns
    the message."""
    error, took = timed_connect_failure(harness, **conf)
    assert isinstance(error, error_type), error
    assert took < within, f"took {took:.1f} s: {error}"
    assert "attempts to connect failed" not in str(error), error
    return str(error)


def _pump(source: socket.socket, sink: socket.socket, before_send: Callable[[bytes], Any] | None = None,
          instead_of_send: Callable[[bytes], bool] | None = None) -> None:
    """Copy ``source`` to ``sink`` until EOF or an error, then pass the EOF on.

    ``before_send`` sees each chunk before it is sent; ``instead_of_send``
    may take a chunk over (returning true), which ends the copy.
    """
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            if before_send is not None:
                before_send(data)
            if instead_of_send is not None and instead_of_send(data):
                return
            sink.sendall(data)
    except OSError:
        pass
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _close(sock: socket.socket) -> None:
    """Shut ``sock`` down (which wakes a thread blocked reading it), then close it."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # never connected, or already gone
    try:
        sock.close()
    except OSError:
        pass
