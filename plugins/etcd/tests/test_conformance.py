"""The core's conformance suite against real etcd: plain, with auth, with mutual TLS.

The whole suite runs on the plain server. With auth and with TLS — which
change how every call is sent, not how torch's handler reacts to membership
changes — the primitive, fencing, Store, concurrency groups run in full, and
of the rendezvous groups the multi-agent join (both protocols); the slow
membership-change scenarios run on the plain server only, to keep the etcd
test set within its time budget. ``RDZV_ETCD_FULL_CONFORMANCE=1`` runs the
full suite on all three.
"""

from __future__ import annotations

import os

import pytest

from rdzv_core.testing import AdapterHarness, ConformanceSuite
from rdzv_core.testing.conformance import (
    ConcurrencyTests,
    FencingTests,
    PrimitiveTests,
    RendezvousTests,
    StoreSemanticsTests,
)
from rdzv_etcd.adapter import EtcdStateStore
from rdzv_etcd.testing.servers import EtcdCluster

#: Same as conftest.AUTH_USER (conftest modules are not importable by name).
AUTH_USER = "rdzv-agent"



class JoinOnly(RendezvousTests):
    """``RendezvousTests`` cut to the multi-agent join (both protocols): the
    other scenarios exercise torch's membership logic, which the transport
    does not change. (A ``None`` attribute hides an inherited test.)"""

    test_re_rendezvous_after_an_agent_leaves = None
    test_closed_rendezvous_is_seen_by_every_agent = None
    test_num_nodes_waiting_counts_a_late_joiner = None


if os.environ.get("RDZV_ETCD_FULL_CONFORMANCE") == "1":
    SECURED: tuple[type, ...] = (ConformanceSuite,)
else:
    SECURED = (PrimitiveTests, FencingTests, StoreSemanticsTests, ConcurrencyTests, JoinOnly)


class TestEtcdPlain(ConformanceSuite):
    """No authentication, no TLS: the whole suite."""

    @pytest.fixture
    def harness(self, etcd_server: EtcdCluster) -> AdapterHarness:
        return AdapterHarness(EtcdStateStore, endpoint=etcd_server.endpoint)


class TestEtcdAuth(*SECURED):  # type: ignore[misc]
    """A user with read-write on /rdzv/ only; the password comes from a file."""

    @pytest.fixture
    def harness(self, auth_etcd_server: EtcdCluster, password_file: str) -> AdapterHarness:
        return AdapterHarness(EtcdStateStore, endpoint=auth_etcd_server.endpoint,
                              conf={"username": AUTH_USER, "password_file": password_file})


class TestEtcdTls(*SECURED):  # type: ignore[misc]
    """TLS only, server certificate checked against the test CA, client certificate required."""

    @pytest.fixture
    def harness(self, tls_etcd_server: EtcdCluster, tls_conf: dict[str, str]) -> AdapterHarness:
        return AdapterHarness(EtcdStateStore, endpoint=tls_etcd_server.endpoint, conf=dict(tls_conf))
