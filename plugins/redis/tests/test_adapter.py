"""Redis-specific behaviour beyond the conformance suite."""

from __future__ import annotations

import os
import threading
import time

import pytest

from rdzv_core.handler import create_backend
from rdzv_core.testing import AdapterHarness
from rdzv_core.testing.proxy import FlakyProxy
from rdzv_redis.adapter import RedisStateStore
from rdzv_redis.testing.servers import RedisServer


@pytest.fixture
def adapter(plain_harness: AdapterHarness):  # type: ignore[no-untyped-def]
    store = plain_harness.adapter(plain_harness.new_run_id())
    yield store
    store.purge()
    store.close()


def test_keys_share_one_hash_tag_and_expire(adapter: RedisStateStore, redis_server: RedisServer) -> None:
    admin = redis_server.admin()
    adapter.cas("state", None, b"s")
    adapter.add("kv/n", 2)
    names = sorted(k.decode() for k in admin.scan_iter(match=adapter.namespace.match_all))
    tag = adapter.namespace.tag
    assert names and all(n.startswith(tag) for n in names)
    slots = {_slot(n) for n in names}
    assert len(slots) == 1, names
    for name in names:
        assert 0 < admin.pttl(name) <= 86_400_000, name


def _slot(name: str) -> str:
    start = name.index("{")
    return name[start + 1 : name.index("}", start)]


def test_per_key_ttl_expires_the_key(adapter: RedisStateStore) -> None:
    adapter.write("hb/node-1", b"alive", ttl=0.3)
    adapter.write("hb/node-2", b"alive")
    assert adapter.count("hb/") == 2
    time.sleep(0.6)
    assert adapter.read("hb/node-1") is None and adapter.count("hb/") == 1


def test_run_ttl_refreshes_on_write(plain_harness: AdapterHarness, redis_server: RedisServer) -> None:
    store = plain_harness.adapter(plain_harness.new_run_id(), ttl=100)
    try:
        store.write("k", b"v")
        name = store.namespace.data("k")
        assert 99_000 < redis_server.admin().pttl(name) <= 100_000
        no_expiry = plain_harness.adapter(plain_harness.new_run_id(), ttl=0)
        no_expiry.write("k", b"v")
        assert redis_server.admin().pttl(no_expiry.namespace.data("k")) == -1
        no_expiry.purge()
        no_expiry.close()
    finally:
        store.purge()
        store.close()


def test_counter_reads_back_as_ascii_and_count_ignores_bookkeeping(adapter: RedisStateStore) -> None:
    assert adapter.add("kv/c", 5) == 5
    assert adapter.add("kv/c", -2) == 3
    found = adapter.read("kv/c")
    assert found is not None and found.value == b"3"
    assert adapter.count("kv/") == 1  # no version or op-record keys counted
    assert adapter.add("big", 2**62) == 2**62 and adapter.add("big", 2**62 - 1) == 2**63 - 1


def test_glob_characters_in_keys_are_literal(adapter: RedisStateStore) -> None:
    adapter.write("a*[x]?", b"1")
    adapter.write("ab", b"1")
    assert adapter.count("a*") == 1 and adapter.count("a") == 2


def test_runs_are_isolated(plain_harness: AdapterHarness) -> None:
    first = plain_harness.adapter("iso-a}:x")
    second = plain_harness.adapter("iso-a")
    try:
        first.write("k", b"1")
        assert second.read("x}:k") is None and second.count("") == 0
    finally:
        for store in (first, second):
            store.purge()
            store.close()


def test_versions_never_repeat_after_delete(adapter: RedisStateStore) -> None:
    old = adapter.cas("k", None, b"one").token
    adapter.delete("k")
    new = adapter.cas("k", None, b"one").token
    assert new != old
    assert not adapter.cas("k", old, b"two").applied


def test_cas_survives_a_script_cache_flush(adapter: RedisStateStore, redis_server: RedisServer) -> None:
    token = adapter.cas("k", None, b"one").token
    redis_server.admin().script_flush()  # what a failover to a fresh master looks like
    assert adapter.cas("k", token, b"two").applied
    adapter.write("w", b"x")
    assert adapter.add("n", 1) == 1


def test_wait_wakes_on_publish_not_by_polling(adapter: RedisStateStore, redis_server: RedisServer) -> None:
    admin = redis_server.admin()
    before = int(admin.info("commandstats").get("cmdstat_exists", {}).get("calls", 0))
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(adapter.wait(["late"], 30)))
    started = time.monotonic()
    waiter.start()
    time.sleep(1.5)
    adapter.write("late", b"x")
    waiter.join(30)
    assert result == [True] and time.monotonic() - started < 10
    calls = int(admin.info("commandstats").get("cmdstat_exists", {}).get("calls", 0)) - before
    assert calls <= 4, f"{calls} EXISTS calls for one wait: that is polling"


def test_wait_times_out(adapter: RedisStateStore) -> None:
    started = time.monotonic()
    assert adapter.wait(["never"], 0.5) is False
    assert time.monotonic() - started < 5


def test_add_is_not_applied_twice_when_its_reply_is_lost(redis_server: RedisServer) -> None:
    """The server applies an ``add`` and the connection breaks before its
    reply arrives: the adapter's retry (same operation id) adds nothing more.

    A plain retry of the same ``add`` without the operation id would count
    each lost reply twice (13 instead of 7 here).
    """
    with FlakyProxy("127.0.0.1", redis_server.port) as proxy:
        harness = AdapterHarness(RedisStateStore, endpoint=proxy.endpoint,
                                 conf={"read_timeout": 10, "connect_timeout": 5}, backend_name="redis")
        store = harness.adapter(harness.new_run_id())
        try:
            assert store.add("n", 1) == 1  # loads the script: later requests are applied adds
            add_request = store.namespace.op("").encode()  # only an add names an op record
            for expected in range(2, 8):
                proxy.cut_reply_of(add_request)
                assert store.add("n", 1) == expected
            assert proxy.replies_cut == 6
            assert redis_server.admin().get(store.namespace.data("n")) == b"7"
        finally:
            store.purge()
            store.close()


def test_after_fork_child_uses_its_own_connections(adapter: RedisStateStore) -> None:
    adapter.write("parent", b"1")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            adapter.after_fork()
            adapter.write("child", b"2")
            code = 0 if adapter.read("parent").value == b"1" else 3
        finally:
            os.write(write_fd, b"done")
            os._exit(code)
    os.read(read_fd, 4)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert adapter.read("child").value == b"2"  # the parent's pool still works
    os.close(read_fd)
    os.close(write_fd)


def test_state_is_signed_when_a_secret_is_set(
    plain_harness: AdapterHarness, redis_server: RedisServer, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "secret"
    secret.write_text("rendezvous-secret\n")
    run = plain_harness.new_run_id()
    backend, _ = create_backend(plain_harness.params(run, secret_file=str(secret)), plain_harness.registry())
    backend.set_state(b"payload")
    other, _ = create_backend(plain_harness.params(run), plain_harness.registry())
    from torch.distributed.elastic.rendezvous import RendezvousStateError

    with pytest.raises(RendezvousStateError, match="signed"):
        other.get_state()
    plain_harness.adapter(run).purge()


def test_unix_socket_endpoint(redis_binary: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sock = tmp_path / "redis.sock"
    with RedisServer(tmp_path / "srv", [f'unixsocket "{sock}"', "unixsocketperm 700"]) as _server:
        h = AdapterHarness(RedisStateStore, endpoint=f"unix://{sock}", conf={"db": 2}, backend_name="redis")
        store = h.adapter(h.new_run_id())
        assert store.cas("k", None, b"v").applied and store.read("k").value == b"v"
        assert store.endpoint.startswith("unix://")
        store.close()


def test_a_wait_is_woken_only_by_writes_of_its_own_keys(redis_binary: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Writes of other keys are published on other channels: the waiter does
    # not re-check for them (with one run-wide channel every write of a round
    # woke every waiting agent, N writes x N waiters).
    with RedisServer(tmp_path / "srv", []) as server:
        h = AdapterHarness(RedisStateStore, endpoint=server.endpoint, backend_name="redis")
        run = h.new_run_id()
        waiter, writer = h.adapter(run), h.adapter(run)
        admin = server.admin()
        result: list[bool] = []
        thread = threading.Thread(target=lambda: result.append(waiter.wait(["wanted"], 30.0)))
        thread.start()
        time.sleep(0.5)  # subscribed and blocked
        before = admin.info("commandstats").get("cmdstat_exists", {}).get("calls", 0)
        for i in range(50):
            writer.write(f"other/{i}", b"x")
        time.sleep(0.5)
        after_others = admin.info("commandstats").get("cmdstat_exists", {}).get("calls", 0)
        writer.write("wanted", b"1")
        thread.join(10)
        assert result == [True]
        assert after_others - before == 0, "writes of other keys woke the waiter"
        waiter.close()
        writer.close()


def test_waits_in_several_threads_of_one_adapter(adapter: RedisStateStore) -> None:
    # Each waiting thread has its own Pub/Sub connection.
    results: dict[str, bool] = {}
    names = [f"k{i}" for i in range(8)]
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, adapter.wait([n, "common"], 20.0)))
               for n in names]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    for name in names:
        adapter.write(name, b"1")
    adapter.write("common", b"1")
    for thread in threads:
        thread.join(20)
    assert results == {n: True for n in names}


def test_server_binary_override_must_be_executable(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rdzv_redis.testing.servers import BINARY_ENV, ServerBinaryMissing, find_redis_server

    monkeypatch.setenv(BINARY_ENV, str(tmp_path / "missing-redis-server"))
    with pytest.raises(ServerBinaryMissing, match=BINARY_ENV):
        find_redis_server()


def test_a_wait_opens_no_connection_and_its_write_wakes_it_with_one_check(redis_binary: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The adapter opens its first Pub/Sub connection when it starts, beside
    # the data connection; a single-key wait checks once after subscribing
    # and takes the write's own message as proof that the key exists.
    with RedisServer(tmp_path / "srv", []) as server:
        adapter = AdapterHarness(RedisStateStore, endpoint=server.endpoint, backend_name="redis").adapter("run")
        admin = server.admin()

        def connections() -> int:
            return int(admin.info("stats")["total_connections_received"])

        def exists_calls() -> int:
            return int(admin.info("commandstats").get("cmdstat_exists", {}).get("calls", 0))

        adapter.add("warm", 1)  # the first command: on the connection verify() opened
        exists_before = exists_calls()  # (admin's own connection is open from here on)
        connections_before = connections()
        result: list[bool] = []
        thread = threading.Thread(target=lambda: result.append(adapter.wait(["seal"], 30.0)))
        thread.start()
        time.sleep(0.5)  # subscribed and blocked
        adapter.write("seal", b"1")
        thread.join(10)
        assert result == [True]
        assert connections() == connections_before, "the wait or the write opened a connection"
        assert exists_calls() - exists_before == 1, "a single-key wait re-checked after the write's message"
        adapter.close()


def test_wait_read_takes_the_value_from_the_writes_message(redis_binary: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The write script publishes the value it wrote: a woken waiter returns
    # it without reading the key again (one GET, made before the write).
    with RedisServer(tmp_path / "srv", []) as server:
        adapter = AdapterHarness(RedisStateStore, endpoint=server.endpoint, backend_name="redis").adapter("run")
        admin = server.admin()

        def reads() -> int:
            stats = admin.info("commandstats")
            return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("get", "mget", "exists"))

        adapter.add("warm", 1)
        before = reads()
        result: list[bytes | None] = []
        thread = threading.Thread(target=lambda: result.append(adapter.wait_read("seal", 30.0)))
        thread.start()
        time.sleep(0.5)  # subscribed, checked once and blocked
        checked = reads() - before
        adapter.cas("seal", None, b"sealed \x00\xff")
        thread.join(10)
        assert result == [b"sealed \x00\xff"]
        assert checked == 1
        # The CAS script's own GETs count as calls too: compare with a CAS alone.
        after_cas = reads()
        adapter.cas("other", None, b"x")
        assert reads() - after_cas == after_cas - before - checked, "the woken waiter read the key again"
        adapter.close()


def test_an_adapter_holds_one_data_connection_whatever_its_threads(redis_binary: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Data commands share one held connection (no pool check-out per
    # command); with 1024 agents that is 2048 connections on the server
    # (data + Pub/Sub), not one per thread that ever touched the adapter.
    with RedisServer(tmp_path / "srv", []) as server:
        adapter = AdapterHarness(RedisStateStore, endpoint=server.endpoint, backend_name="redis").adapter("run")
        admin = server.admin()
        before = int(admin.info("stats")["total_connections_received"])
        barrier = threading.Barrier(8)

        def hammer(index: int) -> None:
            barrier.wait()
            for i in range(50):
                adapter.write(f"k{index}", str(i).encode())
                adapter.add("counter", 1)
                assert adapter.read(f"k{index}") is not None

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert adapter.read("counter").value == b"400"
        assert int(admin.info("stats")["total_connections_received"]) == before
        adapter.close()
