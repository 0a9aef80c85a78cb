"""Bad input fails at start (or at once) with a clear error, within read_timeout.

Every case goes through ``rdzv_core.handler.create_backend``, the path torch
takes, and asserts what the user reads: the error type, the endpoint, and
why. Time bounds are generous "did not hang" checks, not latency targets.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from typing import Any, Callable, Iterator

import pytest
from torch.distributed.elastic.rendezvous import RendezvousConnectionError, RendezvousStateError

from rdzv_core.errors import RdzvConfigError
from rdzv_core.handler import create_backend
from rdzv_core.testing import AdapterHarness
from rdzv_etcd.adapter import EtcdStateStore
from rdzv_etcd.testing.servers import EtcdCluster, free_ports

AUTH_USER = "rdzv-agent"  # as in conftest
AUTH_PASSWORD = "pw-0f5b8e"
FAST = {"read_timeout": 5, "connect_timeout": 2}


def start(endpoint: str, **conf: Any) -> Any:
    """``create_backend`` for a fresh run on ``endpoint``."""
    harness = AdapterHarness(EtcdStateStore, endpoint=endpoint, conf={**FAST, **conf})
    return create_backend(harness.params(), harness.registry())


def fails(call: Callable[[], Any], error: type[BaseException], within: float) -> str:
    """Run ``call``; assert it raises ``error`` within ``within`` s; return the message."""
    started = time.monotonic()
    with pytest.raises(error) as info:
        call()
    elapsed = time.monotonic() - started
    assert elapsed < within, f"took {elapsed:.1f} s: {info.value}"
    return str(info.value)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def http_port() -> Iterator[int]:
    """A plain HTTP/1.1 server (something that is not etcd)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


# -- credentials -------------------------------------------------------------------------


def test_wrong_password_fails_fast_naming_user_and_endpoint(auth_etcd_server: EtcdCluster, tmp_path) -> None:
    wrong = tmp_path / "pw"
    wrong.write_text("not-the-password\n")
    message = fails(lambda: start(auth_etcd_server.endpoint, username=AUTH_USER, password_file=str(wrong)),
                    RendezvousConnectionError, within=5)
    assert "authentication failed" in message and AUTH_USER in message
    assert auth_etcd_server.endpoint in message and "password_file" in message


def test_missing_credentials_on_an_auth_cluster_says_so(auth_etcd_server: EtcdCluster) -> None:
    message = fails(lambda: start(auth_etcd_server.endpoint), RendezvousConnectionError, within=5)
    assert "user name is empty" in message and "username" in message


def test_password_from_the_environment(auth_etcd_server: EtcdCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RDZV_ETCD_PASSWORD", AUTH_PASSWORD)
    backend, _ = start(auth_etcd_server.endpoint, username=AUTH_USER)
    assert backend.get_state() is None


def test_a_user_without_access_to_the_prefix_is_refused(auth_etcd_server: EtcdCluster, password_file: str) -> None:
    message = fails(lambda: start(auth_etcd_server.endpoint, username=AUTH_USER, password_file=password_file,
                                  key_prefix="/elsewhere"), RendezvousConnectionError, within=5)
    assert "permission denied" in message


def test_auth_revoked_mid_run_fails_at_once_not_after_read_timeout(auth_etcd_server: EtcdCluster,
                                                                    tmp_path) -> None:
    auth_etcd_server.add_user(AUTH_PASSWORD, "doomed", "doomed-pw")
    pw = tmp_path / "pw"
    pw.write_text("doomed-pw")
    backend, _ = start(auth_etcd_server.endpoint, username="doomed", password_file=str(pw), read_timeout=60)
    assert backend.get_state() is None
    auth_etcd_server.delete_user(AUTH_PASSWORD, "doomed")
    message = fails(backend.get_state, RendezvousConnectionError, within=10)
    assert "authentication failed" in message or "invalid auth token" in message or "permission" in message


# -- reachability ----------------------------------------------------------------------


def test_unreachable_cluster_names_every_endpoint() -> None:
    ports = free_ports(2)
    endpoints = f"127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"
    message = fails(lambda: start(endpoints), RendezvousConnectionError, within=5)
    assert "no etcd member answered" in message
    assert str(ports[0]) in message and str(ports[1]) in message and "Connection refused" in message


def test_a_silent_port_fails_within_connect_timeout(silent_port: int) -> None:
    message = fails(lambda: start(f"127.0.0.1:{silent_port}"), RendezvousConnectionError, within=6)
    assert f"127.0.0.1:{silent_port}" in message and "no connection within" in message


def test_an_http_server_is_not_etcd(http_port: int) -> None:
    message = fails(lambda: start(f"127.0.0.1:{http_port}"), RendezvousConnectionError, within=5)
    assert f"127.0.0.1:{http_port}" in message and "does not speak gRPC" in message


# -- TLS -------------------------------------------------------------------------------


def test_tls_client_against_a_plain_server(etcd_server: EtcdCluster, tls_files: dict[str, str]) -> None:
    message = fails(lambda: start(f"https://{etcd_server.members[0].address}", cacert=tls_files["ca"]),
                    RendezvousConnectionError, within=5)
    assert "TLS mismatch" in message and etcd_server.members[0].address in message


def test_plain_client_against_a_tls_server(tls_etcd_server: EtcdCluster) -> None:
    address = tls_etcd_server.members[0].address
    message = fails(lambda: start(f"http://{address}"), RendezvousConnectionError, within=5)
    assert address in message and "TLS mismatch" in message


def test_server_certificate_from_another_ca(tls_etcd_server: EtcdCluster, tls_files: dict[str, str]) -> None:
    message = fails(lambda: start(tls_etcd_server.endpoint, cacert=tls_files["other_ca"], cert=tls_files["cert"],
                                  key=tls_files["key"]), RendezvousConnectionError, within=5)
    assert "TLS mismatch" in message and "certificate" in message.lower()


def test_missing_client_certificate(tls_etcd_server: EtcdCluster, tls_files: dict[str, str]) -> None:
    message = fails(lambda: start(tls_etcd_server.endpoint, cacert=tls_files["ca"]),
                    RendezvousConnectionError, within=5)
    assert tls_etcd_server.members[0].address in message
    assert "the server refused this client's certificate or its lack of one: give --rdzv-conf cert and key" in message


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "conf", "expected"),
    [
        ("http://u:secret@127.0.0.1:2379", {}, "do not put a password"),
        ("127.0.0.1:2379", {"password": "x"}, "Did you mean 'password_file'"),
        ("127.0.0.1:2379", {"username": "u"}, "needs a password"),
        ("127.0.0.1:2379", {"ttl": "soon"}, "ttl"),
        ("http://127.0.0.1:2379,https://127.0.0.1:2380", {}, "mix http:// and https://"),
        ("127.0.0.1:99999", {}, "port '99999'"),
        ("redis://127.0.0.1:2379", {}, "unsupported scheme"),
    ],
)
def test_bad_configuration_is_a_config_error(endpoint: str, conf: dict[str, str], expected: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RDZV_ETCD_PASSWORD", raising=False)
    message = fails(lambda: start(endpoint, **conf), RdzvConfigError, within=2)
    assert expected in message


# -- garbage state -----------------------------------------------------------------------


def test_garbage_in_the_state_key_is_a_state_error(plain_harness: AdapterHarness) -> None:
    run = plain_harness.new_run_id()
    backend, _ = create_backend(plain_harness.params(run), plain_harness.registry())
    raw = plain_harness.adapter(run)
    raw.write("state", b"\x80\x04not a frame, maybe a pickle bomb")
    message = fails(backend.get_state, RendezvousStateError, within=5)
    assert "unusable" in message and "state" in message


def test_credentials_for_a_cluster_without_auth_are_ignored(etcd_server: EtcdCluster, password_file: str,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    backend, _ = start(etcd_server.endpoint, username=AUTH_USER, password_file=password_file)
    assert backend.get_state() is None
    assert "authentication is not enabled" in caplog.text
