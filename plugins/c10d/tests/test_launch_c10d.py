"""End-to-end: real rdzv-run/torchrun agents on the c10d adapter, gloo all-reduce."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdzv_core.testing.launch import (
    Agent,
    agent_command,
    assert_all_reduced,
    long_job,
    run_agents,
    start_agent,
    stop_all,
    stop_job,
    wait_for_text,
)
from rdzv_core.testing.ports import free_port

pytestmark = pytest.mark.launch
FAST = {"last_call_timeout": 1, "keep_alive_interval": 1, "keep_alive_max_attempt": 2, "read_timeout": 30}


def run_two_agents(tmp_path: Path, launcher: str, backend: str, endpoints: list[str], confs: list[dict]) -> list[Agent]:
    return run_agents(tmp_path, launcher, backend, endpoints, "e2e", [{**FAST, **conf} for conf in confs])


def test_rdzv_run_c10d_tcp(tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    agents = run_two_agents(tmp_path, "rdzv-run", "c10d", [endpoint] * 2, [{"is_host": "true"}, {"is_host": "false"}])
    assert_all_reduced(agents, 4)
    assert {r["group_rank"] for a in agents for r in a.reports()} == {0, 1}


def test_rdzv_run_c10d_file(tmp_path: Path) -> None:
    path = str(tmp_path / "rdzv-filestore")
    agents = run_two_agents(tmp_path, "rdzv-run", "c10d", [path] * 2, [{"store_type": "file"}] * 2)
    assert_all_reduced(agents, 4)


def test_plain_torchrun_reaches_rdzv_c10d(tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    agents = run_two_agents(tmp_path, "torchrun", "rdzv-c10d", [endpoint] * 2, [{"is_host": "true"}, {"is_host": "false"}])
    assert_all_reduced(agents, 4)


def test_elastic_agent_killed_mid_run_the_other_finishes(tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    # A long last call: the first round waits for both agents even when one
    # starts late on a loaded machine (see the elastic test for Redis); the
    # survivor's re-rendezvous waits it out once. The job runs until the test
    # stops it.
    conf = {**FAST, "last_call_timeout": 15}
    stop_file = tmp_path / "stop-job"
    agents = []
    try:
        for i, is_host in enumerate(("true", "false")):
            command = agent_command("rdzv-run", "c10d", endpoint, "elastic", "1:2", 2, {**conf, "is_host": is_host},
                                    max_restarts=3, worker_args=long_job(stop_file))
            agents.append(start_agent(command, tmp_path / f"agent{i}.log"))
        wait_for_text(agents[0], "RDZV-STEP rank=0 world_size=4", 120)
        agents[1].kill()  # the second node dies (c10d's store lives in the first)
        # The survivor runs again alone: after its workers failed on the dead
        # peer (protocol=torch: a restart), or at once when the scalable
        # protocol records the death (a membership change: no restart counted).
        wait_for_text(agents[0], r"RDZV-STEP rank=\d+ world_size=2", 120)
        stop_job(stop_file)
        assert agents[0].wait(240) == 0, agents[0].output()[-4000:]
    finally:
        stop_all(agents)
    final = [r for r in agents[0].reports() if r["world_size"] == 2]
    assert sorted(r["rank"] for r in final) == [0, 1]
    assert all(r["world_size"] == 2 and r["sum"] == 3.0 for r in final)


def test_scalable_protocol_replaces_a_killed_agent(tmp_path: Path) -> None:
    """protocol=scalable: the third agent dies (c10d's store lives in the
    first), a replacement joins and the job finishes at full size (6 workers)."""
    from rdzv_core.testing.launch import assert_full_size_after_restart, run_kill_and_replace

    endpoint = f"127.0.0.1:{free_port()}"
    scalable = {**FAST, "protocol": "scalable", "keep_alive_max_attempt": 3}
    confs = [{**scalable, "is_host": "true"}, {**scalable, "is_host": "false"}, {**scalable, "is_host": "false"}]
    survivors, replacement = run_kill_and_replace(tmp_path, "c10d", endpoint, "scalable-e2e", confs, 2, confs[2])
    assert_full_size_after_restart(survivors, replacement, 6)
