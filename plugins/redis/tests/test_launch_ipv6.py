"""An rdzv-run launch with the Redis server bound to the IPv6 loopback only."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdzv_core.testing.launch import FAST, assert_all_reduced, run_agents
from rdzv_core.testing.ports import IPV6_LOOPBACK, free_port, ipv6_loopback_problem
from rdzv_redis.testing.servers import RedisServer

pytestmark = pytest.mark.launch


def test_rdzv_run_on_redis_bound_to_ipv6_loopback(tmp_path: Path, redis_binary: str) -> None:
    problem = ipv6_loopback_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    with RedisServer(tmp_path / "redis6", [], port=free_port(IPV6_LOOPBACK), host=IPV6_LOOPBACK) as server:
        assert server.endpoint.startswith("[::1]:")
        agents = run_agents(tmp_path, "rdzv-run", "redis", [server.endpoint] * 2, "e2e-ipv6", [FAST] * 2,
                            nproc_per_node=1)
        assert_all_reduced(agents, 2)
        assert any(server.admin().scan_iter(match="rdzv:{e2e-ipv6}:*"))  # the rendezvous ran on this server
