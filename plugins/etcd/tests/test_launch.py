"""End-to-end: real rdzv-run/torchrun agents on etcd running a gloo all-reduce (2 workers each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdzv_core.testing.launch import FAST, assert_all_reduced, run_agents
from rdzv_core.testing.node_loss import run_rank0_node_loss, run_survivor_after_node_kill
from rdzv_etcd.testing.servers import EtcdCluster

pytestmark = pytest.mark.launch


def test_rdzv_run_with_backend_etcd(tmp_path: Path, etcd_server: EtcdCluster) -> None:
    agents = run_agents(tmp_path, "rdzv-run", "etcd", [etcd_server.endpoint] * 2, "e2e-rdzv-run", [FAST] * 2)
    assert_all_reduced(agents, 4)
    assert {r["group_rank"] for a in agents for r in a.reports()} == {0, 1}


def test_plain_torchrun_reaches_rdzv_etcd(tmp_path: Path, etcd_server: EtcdCluster) -> None:
    agents = run_agents(tmp_path, "torchrun", "rdzv-etcd", [etcd_server.endpoint] * 2, "e2e-torchrun", [FAST] * 2)
    assert_all_reduced(agents, 4)
    # torch's own "etcd" name is left alone: no warning about overriding a built-in.
    assert "etcd" not in "".join(a.output() for a in agents).lower().replace("rdzv-etcd", "")


def test_first_agent_killed_the_other_re_rendezvous_and_finishes(tmp_path: Path, etcd_server: EtcdCluster) -> None:
    conf = {**FAST, "last_call_timeout": 15}  # one first round for both (see run_survivor_after_node_kill)
    run_survivor_after_node_kill(tmp_path, "etcd", etcd_server.endpoint, "e2e-elastic", [conf] * 2, victim=0)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("protocol", ["torch", "scalable"])
def test_three_agents_rank0_node_killed_survivors_take_the_new_master(
    tmp_path: Path, etcd_server: EtcdCluster, protocol: str
) -> None:
    """Three agents (``--nnodes=2:3``) in torch's default shared-store mode;
    the node holding rank 0 is killed: the two others re-rendezvous, bootstrap
    from a store that a survivor hosts and finish at world size 4 (see the
    same test for Redis: protocol=torch through ``publish_worker_store_every_round``,
    protocol=scalable through rank 0's endpoint in the seal).
    """
    conf = {**FAST, "last_call_timeout": 15, "protocol": protocol}  # one first round for all three
    result = run_rank0_node_loss(tmp_path, "etcd", etcd_server.endpoint, f"e2e-rank0-loss-{protocol}", conf)
    print(f"etcd protocol={protocol}: kill -> 4-worker round in {result.seconds_to_full_round:.1f} s")
