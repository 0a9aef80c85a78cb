"""The shared watch stream (rdzv_etcd.watches) and the shared client
(rdzv_etcd.sharing), seen from etcd's side: its own gauges of open watch
streams and watchers, on a server of this module's own (nothing else
watches it)."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from rdzv_core.testing import AdapterHarness
from rdzv_etcd.adapter import EtcdStateStore
from rdzv_etcd.errors import EtcdUnavailable
from rdzv_etcd.testing.servers import EtcdCluster, etcd_cluster

FAST = {"read_timeout": 5, "connect_timeout": 2}


@pytest.fixture(scope="module")
def quiet_etcd(etcd_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A single-member etcd that only this module's tests use."""
    with etcd_cluster(tmp_path_factory.mktemp("etcd-watches")) as cluster:
        yield cluster


def gauge(cluster: EtcdCluster, name: str, member: int = 0) -> int:
    """One of etcd's own metrics (``/metrics`` on the client port)."""
    with urllib.request.urlopen(f"http://{cluster.members[member].address}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
    raise AssertionError(f"etcd reports no metric {name}")


def settled(cluster: EtcdCluster, name: str, expected: int, timeout: float = 5.0) -> int:
    """The gauge once it reads ``expected`` (or its last value after ``timeout``)."""
    end = time.monotonic() + timeout
    value = gauge(cluster, name)
    while value != expected and time.monotonic() < end:
        time.sleep(0.05)
        value = gauge(cluster, name)
    return value


def harness_of(cluster: EtcdCluster) -> AdapterHarness:
    return AdapterHarness(EtcdStateStore, endpoint=cluster.endpoints, conf=FAST)


def test_waits_of_a_process_share_one_stream_and_one_watcher_per_key(quiet_etcd: EtcdCluster) -> None:
    harness = harness_of(quiet_etcd)
    run = harness.new_run_id()
    adapters = [harness.adapter(run) for _ in range(4)]  # four handlers of one process
    try:
        for adapter in adapters * 5:  # waits one after the other
            assert adapter.wait_read("later", 0.05) is None
        results: list[bytes | None] = []
        waiters = [threading.Thread(target=lambda a=a: results.append(a.wait_read("seal", 10)))
                   for a in adapters * 4]
        for waiter in waiters:
            waiter.start()
        time.sleep(0.5)
        streams = gauge(quiet_etcd, "etcd_debugging_mvcc_watch_stream_total")
        watchers = gauge(quiet_etcd, "etcd_debugging_mvcc_watcher_total")
        adapters[0].write("seal", b"sealed")
        for waiter in waiters:
            waiter.join(10)
        assert results == [b"sealed"] * 16
        # One stream for the whole process; one watcher per key waited on (the
        # watcher of "later" lingers for the next wait on it).
        assert (streams, watchers) == (1, 2)
    finally:
        for adapter in adapters:
            adapter.close()
    assert settled(quiet_etcd, "etcd_debugging_mvcc_watch_stream_total", 0) == 0


def test_a_lingering_watcher_never_answers_with_a_stale_value(quiet_etcd: EtcdCluster) -> None:
    harness = harness_of(quiet_etcd)
    adapter = harness.adapter(harness.new_run_id())
    try:
        assert adapter.wait_read("k", 0.05) is None  # its watcher lingers and sees what follows
        adapter.write("k", b"old")
        adapter.delete("k")
        assert adapter.wait_read("k", 0.3) is None
        assert not adapter.wait(["k"], 0.3)
        writer = threading.Timer(0.2, adapter.write, args=("k", b"new"))
        writer.start()
        assert adapter.wait_read("k", 5) == b"new"
        writer.join()
    finally:
        adapter.close()


def test_a_closed_adapter_leaves_the_shared_client_to_the_others(quiet_etcd: EtcdCluster) -> None:
    harness = harness_of(quiet_etcd)
    run = harness.new_run_id()
    first, second = harness.adapter(run), harness.adapter(run)
    first.close()
    first.close()  # twice: still only its own use given up
    second.write("a", b"1")
    assert second.wait_read("a", 1) == b"1" and first.read("a").value == b"1"
    second.close()
    first.close()


def test_a_killed_member_fails_its_waits_and_the_next_wait_moves_on(etcd_binary: str, tmp_path: Path) -> None:
    with etcd_cluster(tmp_path, size=3) as cluster:
        harness = harness_of(cluster)
        run = harness.new_run_id()
        waiter = harness.adapter(run)
        outcome: list[object] = []

        def wait() -> None:
            try:
                outcome.append(waiter.wait_read("k", 30))
            except EtcdUnavailable as exc:
                outcome.append(exc)

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.5)
        killed = time.monotonic()
        cluster.members[0].kill()  # the member the client uses first
        thread.join(15)
        assert outcome and isinstance(outcome[0], EtcdUnavailable), outcome
        assert time.monotonic() - killed < 10
        cluster.wait_ready(members=cluster.members[1:])
        writer = threading.Timer(0.5, harness.adapter(run).write, args=("k", b"v"))
        writer.start()
        assert waiter.wait_read("k", 10) == b"v"
        writer.join()
        waiter.close()
