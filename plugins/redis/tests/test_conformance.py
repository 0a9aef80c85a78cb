"""The core's conformance suite against real Redis: plain, ACL auth, TLS.

The plain server runs the whole suite. The ACL and TLS servers run the
transport suite (primitives, fencing, Store semantics, concurrency with
injected faults): the multi-agent scenarios exercise the two rendezvous
protocols, which do not depend on how the bytes travel, and take most of the
suite's time, so they run once per adapter (plain).
"""

from __future__ import annotations

import pytest

from rdzv_core.testing import AdapterHarness, ConformanceSuite
from rdzv_core.testing.conformance import TransportSuite
from rdzv_redis.adapter import RedisStateStore
from rdzv_redis.testing.servers import RedisServer

ACL_USER = "rdzv-agent"  # the user conftest.acl_redis_server creates


class TestRedisPlain(ConformanceSuite):
    """No authentication, no TLS."""

    @pytest.fixture
    def harness(self, redis_server: RedisServer) -> AdapterHarness:
        return AdapterHarness(RedisStateStore, endpoint=redis_server.endpoint)


class TestRedisAcl(TransportSuite):
    """An ACL user with only the rights rdzv needs; password from a file."""

    @pytest.fixture
    def harness(self, acl_redis_server: RedisServer, password_file: str) -> AdapterHarness:
        return AdapterHarness(
            RedisStateStore,
            endpoint=f"redis://{ACL_USER}@{acl_redis_server.endpoint}/0",
            conf={"password_file": password_file},
        )


class TestRedisTls(TransportSuite):
    """TLS with a test CA, server certificate checked by host name, client certificate."""

    @pytest.fixture
    def harness(self, tls_redis_server: RedisServer, tls_files: dict[str, str]) -> AdapterHarness:
        return AdapterHarness(
            RedisStateStore,
            endpoint=f"rediss://localhost:{tls_redis_server.tls_port}",
            conf={"ssl_ca_certs": tls_files["ca"], "ssl_certfile": tls_files["cert"], "ssl_keyfile": tls_files["key"]},
        )
