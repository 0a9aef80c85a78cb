"""Store and worker faults during real rdzv-run launches on Redis (issue 11, part 1).

Three agents x 2 gloo workers (``--nnodes=2:4``) on a redis-server of the
test's own (the faults would break other tests sharing the session server),
on both protocols. See :mod:`rdzv_core.testing.chaos` for the scenarios.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from rdzv_core.testing.chaos import run_store_empty_restart, run_store_freeze, run_worker_failure
from rdzv_redis.testing.servers import RedisServer, plain_server

pytestmark = [pytest.mark.launch, pytest.mark.slow, pytest.mark.timeout(480)]
PROTOCOLS = ["torch", "scalable"]


@pytest.fixture
def own_redis(redis_binary: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for this test only (no persistence), never left frozen."""
    server = plain_server(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.thaw()
        server.stop()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_store_frozen_longer_than_the_ttl_restarts_no_worker(tmp_path: Path, own_redis: RedisServer,
                                                             protocol: str) -> None:
    """redis-server SIGSTOPped for 8 s (TTL 3 s; calls block, read_timeout 30 s),
    then continued: a stalled store is no node's death, so no worker restarts."""
    outcome = run_store_freeze(tmp_path, "redis", own_redis.endpoint, f"freeze-{protocol}", protocol, own_redis)
    assert outcome.starts_after_fault == [0, 0, 0], outcome.summary()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_store_restarted_empty_restarts_workers_at_most_once(tmp_path: Path, own_redis: RedisServer,
                                                             protocol: str) -> None:
    """redis-server stopped, down 8 s (longer than the TTL), started again
    empty on the same port: the job goes on at full size after at most one
    restart of each node's workers."""
    outcome = run_store_empty_restart(tmp_path, "redis", own_redis.endpoint, f"empty-{protocol}", protocol,
                                      own_redis)
    assert max(outcome.starts_after_fault) <= 1, outcome.summary()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_worker_failure_during_the_others_compute_step_is_rejoined_fast(tmp_path: Path, own_redis: RedisServer,
                                                                        protocol: str) -> None:
    """One node's worker exits 1 while the others sleep in a 120 s compute
    step: every node restarts its workers within 30 s of the failure and is
    back in a full round before the others' step would have ended."""
    outcome = run_worker_failure(tmp_path, "redis", own_redis.endpoint, f"fail-{protocol}", protocol, bound=30)
    assert outcome.seconds_to_full_round < 60, outcome.summary()
    assert min(outcome.starts_after_fault) >= 1, outcome.summary()
