"""End-to-end: real rdzv-run / torchrun agents on Redis running a gloo all-reduce."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdzv_core.testing.launch import FAST, assert_all_reduced, run_agents
from rdzv_core.testing.node_loss import run_rank0_node_loss, run_survivor_after_node_kill
from rdzv_redis.testing.servers import RedisServer

pytestmark = pytest.mark.launch


def test_rdzv_run_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    agents = run_agents(tmp_path, "rdzv-run", "redis", [redis_server.endpoint] * 2, "e2e-rdzv-run", [FAST] * 2)
    assert_all_reduced(agents, 4)
    assert {r["group_rank"] for a in agents for r in a.reports()} == {0, 1}


def test_plain_torchrun_reaches_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    endpoint = f"redis://{redis_server.endpoint}/0"
    agents = run_agents(tmp_path, "torchrun", "redis", [endpoint] * 2, "e2e-torchrun", [FAST] * 2)
    assert_all_reduced(agents, 4)


def test_elastic_rank0_node_killed_the_rest_finish(tmp_path: Path, redis_server: RedisServer) -> None:
    """The store outlives the node that held rank 0 (c10d's cannot: it lives in that node).

    Two agents (``--nnodes=1:2``); the one whose worker is global rank 0 is
    killed with its workers mid-run; the other re-rendezvouses alone and
    finishes. (With three or more agents, torch 2.13's own handler leaves a
    survivor that does not become rank 0 dialing the dead node's worker store;
    rdzv's handlers do not: see the three-agent test below.)
    """
    # A long last call: the first round waits for both agents even when one
    # starts many seconds late on a loaded machine (it completes as soon as
    # both are in); the survivor's re-rendezvous waits it out once. (A late
    # agent is not admitted into a running torch-protocol job here: with torch
    # 2.13 the running agent's heartbeat in the state is not refreshed after
    # its rendezvous, also on torch's own c10d backend, so the late agent
    # counts it dead and starts a round of its own.)
    conf = {**FAST, "last_call_timeout": 15}
    run_survivor_after_node_kill(tmp_path, "redis", redis_server.endpoint, "e2e-elastic", [conf] * 2, victim=None)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("protocol", ["torch", "scalable"])
def test_three_agents_rank0_node_killed_survivors_take_the_new_master(
    tmp_path: Path, redis_server: RedisServer, protocol: str
) -> None:
    """Three agents (``--nnodes=2:3``) in torch's default shared-store mode;
    the node holding rank 0 is killed: the two others re-rendezvous, bootstrap
    from a store that a survivor hosts and finish at world size 4.

    protocol=torch works because rdzv's handler makes torch's publish the
    workers' store address every round (``publish_worker_store_every_round``),
    protocol=scalable because each round's seal carries rank 0's endpoint.
    """
    conf = {**FAST, "last_call_timeout": 15, "protocol": protocol}  # one first round for all three
    result = run_rank0_node_loss(tmp_path, "redis", redis_server.endpoint, f"e2e-rank0-loss-{protocol}", conf)
    print(f"redis protocol={protocol}: kill -> 4-worker round in {result.seconds_to_full_round:.1f} s")
