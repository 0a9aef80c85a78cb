"""End-to-end: real rdzv-run/torchrun agents on etcd running a gloo all-reduce (2 workers each)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rdzv_core.testing.launch import (
    Agent,
    agent_command,
    long_job,
    run_rank0_node_loss,
    start_agent,
    stop_all,
    stop_job,
    wait_for_text,
)
from rdzv_etcd.testing.servers import EtcdCluster

pytestmark = pytest.mark.launch
FAST = {"last_call_timeout": 1, "keep_alive_interval": 1, "keep_alive_max_attempt": 2, "read_timeout": 30}


def run_two_agents(tmp_path: Path, launcher: str, backend: str, endpoint: str, run_id: str,
                   conf: dict[str, Any] | None = None) -> list[Agent]:
    agents = [start_agent(agent_command(launcher, backend, endpoint, run_id, "2", 2, {**FAST, **(conf or {})}),
                          tmp_path / f"agent{i}.log") for i in range(2)]
    try:
        for agent in agents:
            assert agent.wait(180) == 0, agent.output()[-4000:]
    finally:
        stop_all(agents)
    return agents


def assert_all_reduced(agents: list[Agent], world_size: int) -> None:
    reports = [r for agent in agents for r in agent.reports()]
    assert sorted(r["rank"] for r in reports) == list(range(world_size))
    assert all(r["world_size"] == world_size and r["sum"] == r["expected_sum"] for r in reports)
    assert {r["group_rank"] for r in reports} == {0, 1}


def test_rdzv_run_with_backend_etcd(tmp_path: Path, etcd_server: EtcdCluster) -> None:
    agents = run_two_agents(tmp_path, "rdzv-run", "etcd", etcd_server.endpoint, "e2e-rdzv-run")
    assert_all_reduced(agents, 4)


def test_plain_torchrun_reaches_rdzv_etcd(tmp_path: Path, etcd_server: EtcdCluster) -> None:
    agents = run_two_agents(tmp_path, "torchrun", "rdzv-etcd", etcd_server.endpoint, "e2e-torchrun")
    assert_all_reduced(agents, 4)
    # torch's own "etcd" name is left alone: no warning about overriding a built-in.
    assert "etcd" not in "".join(a.output() for a in agents).lower().replace("rdzv-etcd", "")


def test_first_agent_killed_the_other_re_rendezvous_and_finishes(tmp_path: Path, etcd_server: EtcdCluster) -> None:
    # A long last call: the first round waits for both agents even when one
    # starts late on a loaded machine (see the same test for Redis); the
    # survivor's re-rendezvous waits it out once. The job runs until the test
    # stops it.
    conf = {**FAST, "last_call_timeout": 15}
    stop_file = tmp_path / "stop-job"
    agents: list[Agent] = []
    try:
        for i in range(2):
            command = agent_command("rdzv-run", "etcd", etcd_server.endpoint, "e2e-elastic", "1:2", 2, conf,
                                    max_restarts=3, worker_args=long_job(stop_file))
            agents.append(start_agent(command, tmp_path / f"agent{i}.log"))
        wait_for_text(agents[1], r"RDZV-STEP rank=\d+ world_size=4", 120)
        agents[0].kill()  # the first node dies, workers and all
        # The survivor runs again alone: after its workers failed on the dead
        # peer (protocol=torch: a restart), or at once when the scalable
        # protocol records the death (a membership change: no restart counted).
        wait_for_text(agents[1], r"RDZV-STEP rank=\d+ world_size=2", 120)
        stop_job(stop_file)
        assert agents[1].wait(240) == 0, agents[1].output()[-4000:]
    finally:
        stop_all(agents)
    final = [r for r in agents[1].reports() if r["world_size"] == 2]
    assert sorted(r["rank"] for r in final) == [0, 1]
    assert all(r["world_size"] == 2 and r["sum"] == 3.0 for r in final)


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
