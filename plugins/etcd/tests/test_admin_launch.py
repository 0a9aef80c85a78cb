"""``rdzv status``/``close``/``purge`` on real rdzv-run launches on etcd (issue 13)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rdzv_core.testing.admin_death import assert_death_seen, close_while_rejoining, watch_a_death
from rdzv_core.testing.admin_launch import assert_three_alive, close_a_live_launch, status_of_a_blocked_run
from rdzv_etcd.testing.servers import EtcdCluster

pytestmark = pytest.mark.launch


def raw_keys(cluster: EtcdCluster, run_id: str) -> list[str]:
    """Every key under the run's prefix, as ``etcdctl`` lists it."""
    etcdctl = str(Path(sys.executable).with_name("etcdctl"))
    listed = subprocess.run([etcdctl, f"--endpoints={cluster.endpoint}", "get", "--prefix", "--keys-only",
                             f"/rdzv/{run_id}/"], capture_output=True, text=True, timeout=30, check=True)
    return sorted(line for line in listed.stdout.splitlines() if line.strip())


@pytest.mark.parametrize("protocol", ["torch", "scalable"])
def test_status_close_and_purge_of_a_live_launch(tmp_path: Path, etcd_server: EtcdCluster, protocol: str) -> None:
    run_id = f"admin-live-{protocol}"
    live = close_a_live_launch(tmp_path, "etcd", etcd_server.endpoint, run_id, protocol,
                               lambda: raw_keys(etcd_server, run_id))
    assert_three_alive(live, protocol)


@pytest.mark.parametrize("protocol", ["torch", "scalable"])
def test_status_of_a_run_blocked_at_min_nodes(tmp_path: Path, etcd_server: EtcdCluster, protocol: str) -> None:
    why = status_of_a_blocked_run(tmp_path, "etcd", etcd_server.endpoint, f"admin-blocked-{protocol}", protocol)
    assert why.startswith("1 of min 2 nodes joined round 0; waiting for 1 more"), why


@pytest.mark.parametrize("protocol", ["torch", "scalable"])
def test_status_shows_a_killed_members_beat_ageing_then_the_new_round(tmp_path: Path, etcd_server: EtcdCluster,
                                                                      protocol: str) -> None:
    seen = watch_a_death(tmp_path, "etcd", etcd_server.endpoint, f"admin-death-{protocol}", protocol)
    assert_death_seen(seen)


def test_close_while_the_survivors_rejoin_ends_every_agent_with_status_0(tmp_path: Path, etcd_server: EtcdCluster) -> None:
    close_while_rejoining(tmp_path, "etcd", etcd_server.endpoint, "admin-close-rejoin")
