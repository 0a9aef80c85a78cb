"""An rdzv-run launch with etcd listening on the IPv6 loopback only."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdzv_core.testing.launch import FAST, assert_all_reduced, run_agents
from rdzv_core.testing.ports import IPV6_LOOPBACK, ipv6_loopback_problem
from rdzv_etcd.testing.servers import etcd_cluster

pytestmark = pytest.mark.launch


def test_rdzv_run_on_etcd_listening_on_ipv6_loopback(tmp_path: Path, etcd_binary: str) -> None:
    problem = ipv6_loopback_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    with etcd_cluster(tmp_path / "etcd6", host=IPV6_LOOPBACK) as cluster:
        endpoint = cluster.endpoint
        assert endpoint.startswith("http://[::1]:")
        agents = run_agents(tmp_path, "rdzv-run", "etcd", [endpoint] * 2, "e2e-ipv6", [FAST] * 2, nproc_per_node=1)
        assert_all_reduced(agents, 2)
