"""An rdzv-run launch on a TCPStore reached at the IPv6 loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdzv_core.testing.launch import FAST, assert_all_reduced, run_agents
from rdzv_core.testing.ports import IPV6_LOOPBACK, free_port, ipv6_loopback_problem

pytestmark = pytest.mark.launch


def test_rdzv_run_c10d_on_ipv6_loopback(tmp_path: Path) -> None:
    problem = ipv6_loopback_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    endpoint = f"[{IPV6_LOOPBACK}]:{free_port(IPV6_LOOPBACK)}"
    confs = [{**FAST, "is_host": "true"}, {**FAST, "is_host": "false"}]
    agents = run_agents(tmp_path, "rdzv-run", "c10d", [endpoint] * 2, "e2e-ipv6", confs, nproc_per_node=1)
    assert_all_reduced(agents, 2)
