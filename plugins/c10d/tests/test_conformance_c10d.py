"""The conformance suite on the c10d adapter: TCPStore and FileStore."""

from datetime import timedelta

import pytest
import torch.distributed as dist

from rdzv_c10d.adapter import C10dStateStore
from rdzv_core.testing import AdapterHarness, ConformanceSuite


@pytest.fixture(scope="module")
def tcp_server() -> dist.TCPStore:
    """A TCPStore server on a free loopback port, hosted by the test process."""
    return dist.TCPStore("127.0.0.1", 0, is_master=True, multi_tenant=True, timeout=timedelta(seconds=60))


class TestC10dTcpConformance(ConformanceSuite):
    @pytest.fixture
    def harness(self, tcp_server: dist.TCPStore) -> AdapterHarness:
        return AdapterHarness(C10dStateStore, f"127.0.0.1:{tcp_server.port}", {"is_host": "false"})


class TestC10dFileConformance(ConformanceSuite):
    @pytest.fixture
    def harness(self, tmp_path_factory: pytest.TempPathFactory) -> AdapterHarness:
        path = tmp_path_factory.mktemp("filestore") / "store"
        return AdapterHarness(C10dStateStore, str(path), {"store_type": "file"})
