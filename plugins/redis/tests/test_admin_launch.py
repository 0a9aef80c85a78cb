"""``rdzv status``/``close``/``purge`` on real rdzv-run launches on Redis (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdzv_core.testing.admin_death import assert_death_seen, close_while_rejoining, watch_a_death
from rdzv_core.testing.admin_launch import assert_three_alive, close_a_live_launch, status_of_a_blocked_run
from rdzv_redis.testing.servers import RedisServer

pytestmark = pytest.mark.launch


def raw_keys(server: RedisServer, run_id: str) -> list[str]:
    """Every key of the store whose name holds the run's hash tag."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=server.port)
    try:
        return sorted(k.decode() for k in client.scan_iter(match=f"*{{{run_id}}}*"))
    finally:
        client.close()


@pytest.mark.parametrize("protocol", ["torch", "scalable"])
def test_status_close_and_purge_of_a_live_launch(tmp_path: Path, redis_server: RedisServer, protocol: str) -> None:
    run_id = f"admin-live-{protocol}"
    live = close_a_live_launch(tmp_path, "redis", redis_server.endpoint, run_id, protocol,
                               lambda: raw_keys(redis_server, run_id))
    assert_three_alive(live, protocol)


@pytest.mark.parametrize("protocol", ["torch", "scalable"])
def test_status_of_a_run_blocked_at_min_nodes(tmp_path: Path, redis_server: RedisServer, protocol: str) -> None:
    why = status_of_a_blocked_run(tmp_path, "redis", redis_server.endpoint, f"admin-blocked-{protocol}", protocol)
    assert why.startswith("1 of min 2 nodes joined round 0; waiting for 1 more"), why
    if protocol == "scalable":  # its slot carries the join deadline
        assert "; join timeout in " in why, why


@pytest.mark.parametrize("protocol", ["torch", "scalable"])
def test_status_shows_a_killed_members_beat_ageing_then_the_new_round(tmp_path: Path, redis_server: RedisServer,
                                                                      protocol: str) -> None:
    seen = watch_a_death(tmp_path, "redis", redis_server.endpoint, f"admin-death-{protocol}", protocol)
    assert_death_seen(seen)


def test_close_while_the_survivors_rejoin_ends_every_agent_with_status_0(tmp_path: Path, redis_server: RedisServer) -> None:
    close_while_rejoining(tmp_path, "redis", redis_server.endpoint, "admin-close-rejoin")
