"""The c10d adapter's first connection survives cut connections (issue 11).

The core does not retry c10d's connect: torch's TCPStore client retries
refused, reset and closed connections itself until its timeout, which the
adapter sets to ``connect_timeout``. These tests pin that down through a
:class:`~rdzv_core.testing.proxy.FlakyProxy` in front of a real TCPStore.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterator

import pytest
import torch.distributed as dist
from torch.distributed.elastic.rendezvous import RendezvousConnectionError

from rdzv_c10d.adapter import C10dStateStore
from rdzv_core.testing import AdapterHarness
from rdzv_core.testing.ports import free_port
from rdzv_core.testing.proxy import FlakyProxy, assert_connects, timed_connect_failure

CONNECT_TIMEOUT = 8.0


@pytest.fixture(scope="module")
def tcp_server() -> Iterator[dist.TCPStore]:
    """A TCPStore server on a free loopback port, hosted by the test process."""
    yield dist.TCPStore("127.0.0.1", 0, is_master=True, multi_tenant=True, timeout=timedelta(seconds=60))


def harness(endpoint: str, **conf: Any) -> AdapterHarness:
    """A client-only harness on ``endpoint`` with :data:`CONNECT_TIMEOUT`."""
    return AdapterHarness(C10dStateStore, endpoint,
                          {"is_host": "false", "read_timeout": 5, "connect_timeout": CONNECT_TIMEOUT, **conf})


@pytest.mark.parametrize("faults", [{"cut_first": 2}, {"cut_first": 2, "reset": False}, {"refuse_for": 1.0}],
                         ids=["reset", "closed", "late"])
def test_tcpstore_retries_its_first_connection_itself(tcp_server: dist.TCPStore, faults: dict[str, Any]) -> None:
    with FlakyProxy("127.0.0.1", tcp_server.port, **faults) as proxy:
        assert_connects(harness(proxy.endpoint), within=CONNECT_TIMEOUT)
        assert proxy.cut == faults.get("cut_first", 0)


def test_nothing_listening_fails_after_connect_timeout() -> None:
    # TCPStore may start a second try just as the first one's timeout ends:
    # up to about twice connect_timeout, plus its backoff delay.
    endpoint = f"127.0.0.1:{free_port()}"
    error, took = timed_connect_failure(harness(endpoint, connect_timeout=2))
    assert isinstance(error, RendezvousConnectionError), error
    assert 1.9 <= took < 7, f"took {took:.1f} s: {error}"
    assert str(error).startswith(f"rdzv backend 'rdzv-c10d': cannot connect to '{endpoint}': DistNetworkError: ")
