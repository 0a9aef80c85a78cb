"""End-to-end: real rdzv-run/torchrun agents on the c10d adapter, gloo all-reduce."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdzv_core.testing.launch import FAST, Agent, assert_all_reduced, run_agents
from rdzv_core.testing.node_loss import assert_full_size_after_restart, run_kill_and_replace, run_survivor_after_node_kill
from rdzv_core.testing.ports import free_port

pytestmark = pytest.mark.launch


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
    # The second node dies: c10d's store lives in the first.
    conf = {**FAST, "last_call_timeout": 15}  # one first round for both (see run_survivor_after_node_kill)
    confs = [{**conf, "is_host": "true"}, {**conf, "is_host": "false"}]
    run_survivor_after_node_kill(tmp_path, "c10d", endpoint, "elastic", confs, victim=1)


def test_scalable_protocol_replaces_a_killed_agent(tmp_path: Path) -> None:
    """protocol=scalable: the third agent dies (c10d's store lives in the
    first), a replacement joins and the job finishes at full size (6 workers)."""
    endpoint = f"127.0.0.1:{free_port()}"
    scalable = {**FAST, "protocol": "scalable", "keep_alive_max_attempt": 3}
    confs = [{**scalable, "is_host": "true"}, {**scalable, "is_host": "false"}, {**scalable, "is_host": "false"}]
    survivors, replacement = run_kill_and_replace(tmp_path, "c10d", endpoint, "scalable-e2e", confs, 2, confs[2])
    assert_full_size_after_restart(survivors, replacement, 6)
