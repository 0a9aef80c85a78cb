"""The first connection to etcd keeps trying within ``connect_timeout`` (issue 11).

A :class:`~rdzv_core.testing.proxy.FlakyProxy` in front of the session's
real etcd cuts the first connections (or refuses them for a while); the
agent's connect must then succeed within ``connect_timeout``, as torch makes
it (``connect_adapter``). Nothing listening fails after about
``connect_timeout`` with one message; a wrong password or an untrusted
certificate fails at once, however long ``connect_timeout`` is.
"""

from __future__ import annotations

import http.server
import threading
from typing import Any

import pytest
from torch.distributed.elastic.rendezvous import RendezvousConnectionError

from rdzv_core.testing import AdapterHarness
from rdzv_core.testing.ports import free_port
from rdzv_core.testing.proxy import (
    FlakyProxy,
    assert_connects,
    assert_fails_at_once,
    assert_gives_up_after_connect_timeout,
)
from rdzv_etcd.adapter import EtcdStateStore
from rdzv_etcd.testing.servers import EtcdCluster

AUTH_USER = "rdzv-agent"  # as in conftest
#: Long enough that "retried until connect_timeout" and "at once" differ clearly.
CONNECT_TIMEOUT = 8.0


def harness(endpoint: str, **conf: Any) -> AdapterHarness:
    """A harness on ``endpoint`` with ``read_timeout=5`` and :data:`CONNECT_TIMEOUT`."""
    return AdapterHarness(EtcdStateStore, endpoint=endpoint,
                          conf={"read_timeout": 5, "connect_timeout": CONNECT_TIMEOUT, **conf})


def proxy_for(cluster: EtcdCluster, **faults: Any) -> FlakyProxy:
    """A :class:`FlakyProxy` in front of the cluster's first member."""
    host, port = cluster.members[0].address.rsplit(":", 1)
    return FlakyProxy(host, int(port), **faults)


@pytest.mark.parametrize("reset", [True, False], ids=["reset", "closed"])
def test_cut_first_connections_are_retried_within_connect_timeout(etcd_server: EtcdCluster, reset: bool) -> None:
    with proxy_for(etcd_server, cut_first=2, reset=reset) as proxy:
        assert_connects(harness(proxy.endpoint), within=CONNECT_TIMEOUT)
        assert proxy.cut == 2 and proxy.accepted > 2


def test_a_server_that_starts_listening_late_is_waited_for(etcd_server: EtcdCluster) -> None:
    with proxy_for(etcd_server, refuse_for=1.0) as proxy:
        assert_connects(harness(proxy.endpoint), within=CONNECT_TIMEOUT, at_least=1.0)


def test_nothing_listening_fails_after_connect_timeout_with_one_message() -> None:
    assert_gives_up_after_connect_timeout(harness(f"127.0.0.1:{free_port()}"),
                                          "EtcdUnavailable: no etcd member answered")


def test_wrong_password_fails_at_once(auth_etcd_server: EtcdCluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    wrong = tmp_path / "pw"
    wrong.write_text("not-the-password\n")
    message = assert_fails_at_once(harness(auth_etcd_server.endpoint, username=AUTH_USER, password_file=str(wrong)),
                                   RendezvousConnectionError)
    assert "authentication failed" in message


def test_an_untrusted_server_certificate_fails_at_once(tls_etcd_server: EtcdCluster,
                                                        tls_files: dict[str, str]) -> None:
    message = assert_fails_at_once(harness(tls_etcd_server.endpoint, cacert=tls_files["other_ca"],
                                           cert=tls_files["cert"], key=tls_files["key"]), RendezvousConnectionError)
    assert "CERTIFICATE_VERIFY_FAILED" in message


def test_a_port_that_is_not_grpc_fails_at_once() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        message = assert_fails_at_once(harness(f"127.0.0.1:{server.server_address[1]}"), RendezvousConnectionError,
                                       within=CONNECT_TIMEOUT / 2)
    finally:
        server.shutdown()
        server.server_close()
    assert "does not speak gRPC" in message
