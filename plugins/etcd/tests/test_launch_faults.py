"""Store and worker faults during real rdzv-run launches on etcd (issue 11, part 1).

Three agents x 2 gloo workers (``--nnodes=2:4``) on a single-member etcd of
the test's own, on both protocols. See :mod:`rdzv_core.testing.chaos`. (etcd
keeps its data on disk, so the empty-restart scenario is Redis only.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from rdzv_core.testing.chaos import run_store_freeze, run_worker_failure
from rdzv_etcd.testing.servers import EtcdCluster, etcd_cluster

pytestmark = [pytest.mark.launch, pytest.mark.slow, pytest.mark.timeout(480)]
PROTOCOLS = ["torch", "scalable"]


@pytest.fixture
def own_etcd(etcd_binary: str, tmp_path: Path) -> Iterator[EtcdCluster]:
    """A single-member etcd for this test only, never left frozen."""
    with etcd_cluster(tmp_path / "etcd") as cluster:
        try:
            yield cluster
        finally:
            cluster.members[0].thaw()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_store_frozen_longer_than_the_ttl_restarts_no_worker(tmp_path: Path, own_etcd: EtcdCluster,
                                                             protocol: str) -> None:
    """etcd SIGSTOPped for 8 s (TTL 3 s; calls block, read_timeout 30 s), then
    continued: a stalled store is no node's death, so no worker restarts."""
    outcome = run_store_freeze(tmp_path, "etcd", own_etcd.endpoint, f"freeze-{protocol}", protocol,
                               own_etcd.members[0])
    assert outcome.starts_after_fault == [0, 0, 0], outcome.summary()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_worker_failure_during_the_others_compute_step_is_rejoined_fast(tmp_path: Path, own_etcd: EtcdCluster,
                                                                        protocol: str) -> None:
    """One node's worker exits 1 while the others sleep in a 120 s compute
    step: every node restarts its workers within 30 s of the failure and is
    back in a full round before the others' step would have ended."""
    outcome = run_worker_failure(tmp_path, "etcd", own_etcd.endpoint, f"fail-{protocol}", protocol, bound=30)
    assert outcome.seconds_to_full_round < 60, outcome.summary()
    assert min(outcome.starts_after_fault) >= 1, outcome.summary()
