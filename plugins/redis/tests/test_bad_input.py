"""Bad input fails at start, fast, with a message that says what is wrong.

Every case runs with ``read_timeout=3`` and ``connect_timeout=2`` and must
fail well within a generous bound (it must not hang or retry for a minute).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Callable, Iterator

import pytest
from torch.distributed.elastic.rendezvous import RendezvousConnectionError, RendezvousStateError

from rdzv_core.errors import RdzvConfigError
from rdzv_core.handler import connect_adapter, create_backend
from rdzv_core.testing import AdapterHarness
from rdzv_redis.adapter import RedisStateStore
from rdzv_redis.testing.servers import RedisServer, free_port

TIMEOUTS = {"read_timeout": 3, "connect_timeout": 2}
BOUND = 12.0  # seconds: "did not hang", not a performance claim


def harness(endpoint: str, **conf: object) -> AdapterHarness:
    return AdapterHarness(RedisStateStore, endpoint=endpoint, conf={**TIMEOUTS, **conf}, backend_name="redis")


def fails_fast(h: AdapterHarness, error: type[BaseException]) -> str:
    """Connect and return the error message; assert the failure came in time."""
    started = time.monotonic()
    with pytest.raises(error) as info:
        connect_adapter(h.params(), h.registry())
    elapsed = time.monotonic() - started
    assert elapsed < BOUND, f"took {elapsed:.1f} s"
    return str(info.value)


@pytest.fixture
def listener() -> Iterator[Callable[[bytes | None], int]]:
    """Start a TCP server that is not Redis: silent, or answering with ``reply``."""
    sockets: list[socket.socket] = []
    stop = threading.Event()

    def start(reply: bytes | None) -> int:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(0.2)
        sockets.append(server)

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                sockets.append(conn)
                if reply is not None:
                    try:
                        conn.recv(4096)
                        conn.sendall(reply)
                    except OSError:
                        pass

        threading.Thread(target=serve, daemon=True).start()
        return int(server.getsockname()[1])

    yield start
    stop.set()
    for sock in sockets:
        sock.close()


def test_wrong_password(acl_redis_server: RedisServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    wrong = tmp_path / "pw"
    wrong.write_text("not-the-password\n")
    message = fails_fast(
        harness(f"redis://rdzv-agent@{acl_redis_server.endpoint}", password_file=str(wrong)), RdzvConfigError
    )
    assert "rejected the login of user 'rdzv-agent'" in message
    assert acl_redis_server.endpoint in message and "password_file" in message
    assert "not-the-password" not in message


def test_missing_password(acl_redis_server: RedisServer) -> None:
    message = fails_fast(harness(f"redis://rdzv-agent@{acl_redis_server.endpoint}"), RdzvConfigError)
    assert "no password was given" in message


def test_unreachable_host() -> None:
    port = free_port()  # nothing listens there
    message = fails_fast(harness(f"127.0.0.1:{port}"), RendezvousConnectionError)
    assert f"127.0.0.1:{port}" in message and "no answer from Redis" in message


def test_port_that_never_answers(listener: Callable[[bytes | None], int]) -> None:
    port = listener(None)
    message = fails_fast(harness(f"127.0.0.1:{port}"), RendezvousConnectionError)
    assert f"127.0.0.1:{port}" in message and "is this port a Redis server" in message


def test_port_that_speaks_another_protocol(listener: Callable[[bytes | None], int]) -> None:
    port = listener(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    message = fails_fast(harness(f"127.0.0.1:{port}"), RdzvConfigError)
    assert f"127.0.0.1:{port}" in message and "does not speak the Redis protocol" in message


def test_tls_to_a_plain_server(redis_server: RedisServer, tls_files: dict[str, str]) -> None:
    # A plain Redis waits for a newline that a TLS ClientHello never sends: the
    # handshake times out (after connect_timeout) and the message says why.
    message = fails_fast(
        harness(f"rediss://127.0.0.1:{redis_server.port}", ssl_ca_certs=tls_files["ca"]),
        (RdzvConfigError, RendezvousConnectionError),  # type: ignore[arg-type]
    )
    assert "TLS handshake" in message and str(redis_server.port) in message


def test_tls_server_signed_by_another_ca(tls_redis_server: RedisServer, tls_files: dict[str, str]) -> None:
    endpoint = f"rediss://localhost:{tls_redis_server.tls_port}"
    message = fails_fast(harness(endpoint, ssl_ca_certs=tls_files["other_ca"]), RdzvConfigError)
    assert "certificate verify failed" in message and "ssl_ca_certs" in message


def test_plain_client_to_a_tls_server(tls_redis_server: RedisServer) -> None:
    port = tls_redis_server.tls_port
    message = fails_fast(harness(f"127.0.0.1:{port}"), (RendezvousConnectionError, RdzvConfigError))  # type: ignore[arg-type]
    assert str(port) in message and "rediss://" in message


def test_misspelt_conf_key_gets_a_did_you_mean(redis_server: RedisServer) -> None:
    message = fails_fast(harness(redis_server.endpoint, pasword_file="/x"), RdzvConfigError)
    assert "Did you mean 'password_file'" in message


def test_garbage_in_the_state_key(redis_server: RedisServer) -> None:
    h = harness(redis_server.endpoint)
    run = h.new_run_id()
    backend, _store = create_backend(h.params(run), h.registry())
    adapter = h.adapter(run)
    redis_server.admin().set(adapter.namespace.data("state"), b"\x80garbage, not a frame")
    started = time.monotonic()
    with pytest.raises(RendezvousStateError) as info:
        backend.get_state()
    assert time.monotonic() - started < BOUND
    assert "state" in str(info.value) and "rdzv magic" in str(info.value)
    adapter.close()


def test_password_rotated_at_run_time_fails_fast_not_after_retries(acl_redis_server: RedisServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rdzv_redis.testing.servers import rdzv_acl_rules

    admin = acl_redis_server.admin()
    admin.execute_command("ACL", "SETUSER", "rotating", "on", ">first-pw", *rdzv_acl_rules().split())
    secret = tmp_path / "pw"
    secret.write_text("first-pw")
    h = harness(f"redis://rotating@{acl_redis_server.endpoint}", password_file=str(secret), read_timeout=30)
    backend, _store = create_backend(h.params(), h.registry())
    backend.set_state(b"state")
    admin.execute_command("ACL", "SETUSER", "rotating", "resetpass", ">second-pw")
    admin.execute_command("CLIENT", "KILL", "USER", "rotating")
    started = time.monotonic()
    with pytest.raises(RendezvousConnectionError, match="rejected the credentials"):
        backend.get_state()
    assert time.monotonic() - started < 10, "an authentication failure must not be retried until read_timeout"
