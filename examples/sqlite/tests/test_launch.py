"""Real launches on the SQLite adapter: two agents on one database file."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdzv_core.testing.launch import assert_all_reduced, run_agents

pytestmark = pytest.mark.launch
FAST = {"last_call_timeout": 1, "keep_alive_interval": 1, "keep_alive_max_attempt": 2, "read_timeout": 30}


@pytest.mark.parametrize(("launcher", "backend"), [("rdzv-run", "sqlite"), ("torchrun", "sqlite")])
def test_two_agents_all_reduce(tmp_path: Path, launcher: str, backend: str) -> None:
    database = str(tmp_path / "rdzv.db")
    agents = run_agents(tmp_path, launcher, backend, [database] * 2, "e2e-sqlite", [FAST] * 2)
    assert_all_reduced(agents, 4)
    assert {r["group_rank"] for a in agents for r in a.reports()} == {0, 1}
