"""The core's conformance suite against real etcd: plain, with auth, with mutual TLS."""

from __future__ import annotations

import pytest

from rdzv_core.testing import AdapterHarness, ConformanceSuite
from rdzv_etcd.adapter import EtcdStateStore
from rdzv_etcd.testing.servers import EtcdCluster

#: Same as conftest.AUTH_USER (conftest modules are not importable by name).
AUTH_USER = "rdzv-agent"


class TestEtcdPlain(ConformanceSuite):
    """No authentication, no TLS."""

    @pytest.fixture
    def harness(self, etcd_server: EtcdCluster) -> AdapterHarness:
        return AdapterHarness(EtcdStateStore, endpoint=etcd_server.endpoint)


class TestEtcdAuth(ConformanceSuite):
    """A user with read-write on /rdzv/ only; the password comes from a file."""

    @pytest.fixture
    def harness(self, auth_etcd_server: EtcdCluster, password_file: str) -> AdapterHarness:
        return AdapterHarness(EtcdStateStore, endpoint=auth_etcd_server.endpoint,
                              conf={"username": AUTH_USER, "password_file": password_file})


class TestEtcdTls(ConformanceSuite):
    """TLS only, server certificate checked against the test CA, client certificate required."""

    @pytest.fixture
    def harness(self, tls_etcd_server: EtcdCluster, tls_conf: dict[str, str]) -> AdapterHarness:
        return AdapterHarness(EtcdStateStore, endpoint=tls_etcd_server.endpoint, conf=dict(tls_conf))
