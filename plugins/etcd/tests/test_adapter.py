"""etcd-specific behaviour beyond the conformance suite: key layout, leases,
receipts, fork, connection reuse. Reads etcd with raw gRPC stubs where the
test must see what the adapter wrote, independently of the adapter."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any, Iterator

import pytest

from rdzv_core.testing import AdapterHarness
from rdzv_etcd.adapter import EtcdStateStore
from rdzv_etcd.testing.servers import EtcdCluster


@pytest.fixture
def raw(etcd_server: EtcdCluster) -> Iterator[Any]:
    """``(KVStub, LeaseStub, rpc)`` on the plain server, bypassing the adapter."""
    import grpc
    from pyetcd import etcdrpc

    channel = grpc.insecure_channel(etcd_server.members[0].address)
    yield etcdrpc.KVStub(channel), etcdrpc.LeaseStub(channel), etcdrpc
    channel.close()


def raw_get(raw: Any, key: bytes) -> Any:
    kv, _, rpc = raw
    found = kv.Range(rpc.RangeRequest(key=key), timeout=5).kvs
    return found[0] if found else None


def test_keys_live_under_prefix_and_run(plain_harness: AdapterHarness, raw: Any) -> None:
    adapter = plain_harness.adapter("team/job-1", key_prefix="/jobs/")
    adapter.write("state", b"v")
    stored = raw_get(raw, b"/jobs/team%2Fjob-1/k/state")
    assert stored is not None and stored.value == b"v"
    assert stored.lease != 0  # tied to the run lease


def test_cas_token_is_the_mod_revision(plain_harness: AdapterHarness, raw: Any) -> None:
    run = plain_harness.new_run_id()
    adapter = plain_harness.adapter(run)
    result = adapter.cas("state", None, b"one")
    assert result.applied and result.token == raw_get(raw, f"/rdzv/{run}/k/state".encode()).mod_revision
    stale = adapter.cas("state", result.token - 1, b"two")
    assert not stale.applied and stale.value == b"one" and stale.token == result.token


def test_run_lease_is_shared_and_renewed(plain_harness: AdapterHarness, raw: Any) -> None:
    run = plain_harness.new_run_id()
    adapter = plain_harness.adapter(run, ttl=4)  # lease of ceil(1.25 * 4) = 5 s, renewed after 1 s
    adapter.write("a", b"1")
    adapter.write("b", b"2")
    lease_a = raw_get(raw, f"/rdzv/{run}/k/a".encode()).lease
    assert lease_a == raw_get(raw, f"/rdzv/{run}/k/b".encode()).lease
    _, leases, rpc = raw
    ttl = leases.LeaseTimeToLive(rpc.LeaseTimeToLiveRequest(ID=lease_a), timeout=5)
    assert ttl.grantedTTL == 5
    time.sleep(1.6)
    adapter.write("c", b"3")  # renews the lease
    assert leases.LeaseTimeToLive(rpc.LeaseTimeToLiveRequest(ID=lease_a), timeout=5).TTL >= 4


def test_run_keys_expire_after_the_run_stops_writing(plain_harness: AdapterHarness) -> None:
    run = plain_harness.new_run_id()
    writer = plain_harness.adapter(run, ttl=1)  # lease of 2 s
    writer.write("state", b"x")
    writer.close()
    reader = plain_harness.adapter(run)
    deadline = time.monotonic() + 6
    while reader.read("state") is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert reader.read("state") is None


def test_a_revoked_lease_is_replaced(plain_harness: AdapterHarness, raw: Any) -> None:
    run = plain_harness.new_run_id()
    adapter = plain_harness.adapter(run)
    adapter.write("a", b"1")
    _, leases, rpc = raw
    lease = raw_get(raw, f"/rdzv/{run}/k/a".encode()).lease
    leases.LeaseRevoke(rpc.LeaseRevokeRequest(ID=lease), timeout=5)
    assert adapter.read("a") is None
    adapter.write("b", b"2")  # the old lease is gone: a new one is granted
    assert adapter.cas("c", None, b"3").applied and adapter.add("d", 2) == 2
    assert raw_get(raw, f"/rdzv/{run}/k/b".encode()).lease not in (0, lease)
    kv, _, _ = raw  # now the receipt lease of add() vanishes too
    receipt = kv.Range(rpc.RangeRequest(key=f"/rdzv/{run}/r/".encode(), range_end=f"/rdzv/{run}/r0".encode()),
                       timeout=5).kvs[0]
    leases.LeaseRevoke(rpc.LeaseRevokeRequest(ID=receipt.lease), timeout=5)
    assert adapter.add("d", 3) == 5


def test_per_key_ttl_uses_its_own_lease(plain_harness: AdapterHarness, raw: Any) -> None:
    run = plain_harness.new_run_id()
    adapter = plain_harness.adapter(run)
    adapter.write("hb", b"1", ttl=1)
    adapter.write("keep", b"1")
    hb = raw_get(raw, f"/rdzv/{run}/k/hb".encode())
    assert hb.lease not in (0, raw_get(raw, f"/rdzv/{run}/k/keep".encode()).lease)
    deadline = time.monotonic() + 5
    while adapter.read("hb") is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert adapter.read("hb") is None and adapter.read("keep") is not None


def test_rewriting_a_ttl_key_renews_its_own_lease(plain_harness: AdapterHarness, raw: Any) -> None:
    run = plain_harness.new_run_id()
    adapter = plain_harness.adapter(run)
    adapter.write("hb", b"1", ttl=2)
    adapter.write("other", b"1", ttl=2)
    first = raw_get(raw, f"/rdzv/{run}/k/hb".encode()).lease
    assert first != raw_get(raw, f"/rdzv/{run}/k/other".encode()).lease  # no key shares a TTL lease
    for beat in range(5):  # a heartbeat, rewritten well within its TTL: kept alive, never re-granted
        time.sleep(0.75)
        adapter.write("hb", str(beat).encode(), ttl=2)
        assert raw_get(raw, f"/rdzv/{run}/k/hb".encode()).lease == first
    assert adapter.read("other") is None and adapter.read("hb") is not None
    deadline = time.monotonic() + 5
    while adapter.read("hb") is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert adapter.read("hb") is None
    adapter.write("hb", b"again", ttl=2)  # after expiry: a new lease
    assert raw_get(raw, f"/rdzv/{run}/k/hb".encode()).lease != first


def test_add_receipts_stay_out_of_count(plain_harness: AdapterHarness, raw: Any) -> None:
    run = plain_harness.new_run_id()
    adapter = plain_harness.adapter(run)
    assert [adapter.add("n", 1) for _ in range(3)] == [1, 2, 3]
    assert adapter.count("") == 1 and adapter.read("n").value == b"3"
    kv, _, rpc = raw
    receipts = kv.Range(rpc.RangeRequest(key=f"/rdzv/{run}/r/".encode(), range_end=f"/rdzv/{run}/r0".encode(),
                                         count_only=True), timeout=5).count
    assert receipts == 3


def test_add_to_a_non_counter_is_a_clear_error(plain_harness: AdapterHarness) -> None:
    adapter = plain_harness.adapter(plain_harness.new_run_id())
    adapter.write("x", b"hello")
    with pytest.raises(Exception, match="not a counter"):
        adapter.add("x", 1)


def test_wait_sees_a_write_racing_the_watch(plain_harness: AdapterHarness) -> None:
    run = plain_harness.new_run_id()
    waiter, writer = plain_harness.adapter(run), plain_harness.adapter(run)
    for i in range(20):  # a write right after wait() starts: between its read and its watch
        key = f"k{i}"
        thread = threading.Thread(target=writer.write, args=(key, b"v"))
        started = time.monotonic()
        thread.start()
        assert waiter.wait([key], 5)
        thread.join()
        assert time.monotonic() - started < 2


def test_wait_notices_a_delete(plain_harness: AdapterHarness) -> None:
    run = plain_harness.new_run_id()
    adapter = plain_harness.adapter(run)
    adapter.write("a", b"1")
    adapter.delete("a")
    assert not adapter.wait(["a"], 0.3)


_FORK_SCRIPT = """
import os, sys
from rdzv_core.testing import AdapterHarness
from rdzv_etcd.adapter import EtcdStateStore

harness = AdapterHarness(EtcdStateStore, endpoint=sys.argv[1], conf={"read_timeout": 5, "connect_timeout": 2})
adapter = harness.adapter(sys.argv[2])
adapter.write("parent", b"1")
pid = os.fork()
if pid == 0:  # the child: drop the inherited channel, reconnect lazily
    code = 1
    try:
        adapter.after_fork()
        adapter.write("child", b"2")
        code = 0 if adapter.read("parent").value == b"1" and adapter.add("n", 5) == 5 else 3
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status) or (0 if adapter.read("child").value == b"2" else 4))
"""


def test_use_after_fork(plain_harness: AdapterHarness) -> None:
    # In a fresh interpreter, as in a user's process: rdzv_etcd turns on gRPC's
    # fork support before grpc is first imported (in a pytest worker that has
    # run other tests, grpc may already be loaded without it).
    run = plain_harness.new_run_id()
    proc = subprocess.run([sys.executable, "-c", _FORK_SCRIPT, plain_harness.endpoint, run],  # noqa: S603
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    adapter = plain_harness.adapter(run)
    assert adapter.read("child").value == b"2" and adapter.add("n", 1) == 6


def test_close_is_idempotent_and_reconnects_on_use(plain_harness: AdapterHarness) -> None:
    adapter = plain_harness.adapter(plain_harness.new_run_id())
    adapter.write("a", b"1")
    adapter.close()
    adapter.close()
    assert adapter.read("a").value == b"1"
    adapter.close()


def test_many_threads_share_one_adapter(plain_harness: AdapterHarness) -> None:
    adapter: EtcdStateStore = plain_harness.adapter(plain_harness.new_run_id())  # type: ignore[assignment]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                adapter.write(f"w{n}/{i}", b"x")
                adapter.add("total", 1)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert adapter.read("total").value == b"160" and adapter.count("w") == 160


def test_list_keys_run_ids_and_purge_for_the_operators_commands(plain_harness: AdapterHarness) -> None:
    run = plain_harness.new_run_id()
    adapter = plain_harness.adapter(run)
    adapter.write("kv/a", b"1")
    adapter.add("n", 2)
    assert adapter.list_keys("") == ["kv/a", "n"] and adapter.list_keys("kv/") == ["kv/a"]
    assert run in adapter.run_ids()
    assert adapter.purge() >= 2  # the run's keys and its add receipt
    assert adapter.list_keys("") == [] and run not in adapter.run_ids()
