"""End-to-end: protocol=scalable on Redis, the first agent killed and replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdzv_core.testing.node_loss import assert_full_size_after_restart, run_kill_and_replace
from rdzv_redis.testing.servers import RedisServer

pytestmark = pytest.mark.launch
SCALABLE = {"protocol": "scalable", "last_call_timeout": 1, "keep_alive_interval": 1, "keep_alive_max_attempt": 3}


def test_scalable_first_agent_killed_and_replaced(tmp_path: Path, redis_server: RedisServer) -> None:
    survivors, replacement = run_kill_and_replace(
        tmp_path, "redis", redis_server.endpoint, "scalable-e2e", [SCALABLE] * 3, victim=0, replacement_conf=SCALABLE
    )
    assert_full_size_after_restart(survivors, replacement, 6)
