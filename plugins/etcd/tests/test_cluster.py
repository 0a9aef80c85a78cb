"""A three-member etcd cluster on loopback: leader loss and dead endpoints.

Each test starts its own cluster (members are killed). Elections take about
100 ms (``--election-timeout 100``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from rdzv_core.guarded import GuardedStore
from rdzv_core.handler import create_backend, create_rdzv_handler
from rdzv_core.testing import AdapterHarness
from rdzv_etcd.adapter import EtcdStateStore
from rdzv_etcd.testing.servers import EtcdCluster, free_ports

AGENTS = 4


def harness_for(cluster: EtcdCluster, endpoints: str | None = None) -> AdapterHarness:
    return AdapterHarness(EtcdStateStore, endpoint=endpoints or cluster.endpoints,
                          conf={"read_timeout": 10, "connect_timeout": 2})


@pytest.mark.parametrize("protocol, first_key", [("torch", "state"), ("scalable", "p/r/0/ticket")])
def test_leader_killed_during_a_rendezvous_it_still_completes(etcd3: EtcdCluster, protocol: str,
                                                              first_key: str) -> None:
    harness = harness_for(etcd3)
    run = harness.new_run_id()
    settings = {"last_call_timeout": 1, "keep_alive_interval": 1, "join_timeout": 60, "protocol": protocol}
    handlers = [create_rdzv_handler(harness.params(run, AGENTS, AGENTS, **settings), harness.registry())
                for _ in range(AGENTS)]
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def join(index: int) -> None:
        try:
            results[index] = handlers[index].next_rendezvous()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=join, args=(i,), daemon=True) for i in range(AGENTS)]
    try:
        for thread in threads[:2]:  # half the agents join; the round cannot complete without the rest
            thread.start()
        probe = harness.adapter(run)
        deadline = time.monotonic() + 30
        while probe.read(first_key) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert probe.read(first_key) is not None, "the first agents never wrote the rendezvous state"
        leader = etcd3.leader()
        leader.kill()
        for thread in threads[2:]:
            thread.start()
        for thread in threads:
            thread.join(90)
        assert not errors, errors
        assert sorted(info.rank for info in results.values()) == list(range(AGENTS))
        assert {info.world_size for info in results.values()} == {AGENTS}
        assert not leader.alive() and etcd3.leader() is not leader
    finally:
        handlers[0].shutdown()


def test_a_dead_first_endpoint_costs_no_failure(etcd3: EtcdCluster) -> None:
    dead = f"127.0.0.1:{free_ports(1)[0]}"
    harness = harness_for(etcd3, endpoints=f"{dead},{etcd3.endpoints}")
    started = time.monotonic()
    # A raw adapter: no core retry to hide a failure. A refused connection is
    # passed over at once, never waited out: well inside the connect timeout
    # (the time itself, about 0.3 s on an idle machine, is the machine's).
    adapter = harness.adapter(harness.new_run_id(), connect_timeout=20)
    assert time.monotonic() - started < 10
    token = None
    for i in range(20):
        result = adapter.cas("state", token, f"v{i}".encode())
        assert result.applied
        token = result.token
        assert adapter.read("state").value == f"v{i}".encode()
        assert adapter.add("n", 1) == i + 1
    adapter.write("k", b"v")
    assert adapter.wait(["k"], 1) and adapter.count("") == 3


def test_a_silent_first_endpoint_costs_one_connect_timeout(etcd3: EtcdCluster) -> None:
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        harness = harness_for(etcd3, endpoints=f"127.0.0.1:{silent.getsockname()[1]},{etcd3.endpoints}")
        started = time.monotonic()
        adapter = harness.adapter(harness.new_run_id(), connect_timeout=1)
        assert 0.9 < time.monotonic() - started < 3
        started = time.monotonic()
        assert adapter.cas("x", None, b"1").applied and time.monotonic() - started < 0.5  # sticks to a live member
    finally:
        silent.close()


def test_killing_the_member_in_use_loses_and_doubles_nothing(etcd3: EtcdCluster) -> None:
    harness = harness_for(etcd3)
    run = harness.new_run_id()
    backend, _ = create_backend(harness.params(run), harness.registry())
    guarded = GuardedStore(harness.adapter(run), "rdzv-etcd", 10)
    totals: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def count_up() -> None:
        try:
            for _ in range(30):
                value = guarded.add("n", 1)
                with lock:
                    totals.append(value)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=count_up) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    etcd3.members[0].kill()  # the member both clients talk to first
    state = backend.set_state(b"after-the-kill")
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sorted(totals) == list(range(1, 121)), "an add was lost or applied twice"
    assert state is not None and state[2] and backend.get_state()[0] == b"after-the-kill"


def test_an_expired_auth_token_is_renewed_transparently(etcd_binary: str, tmp_path) -> None:
    import rdzv_etcd.client as client_module
    from rdzv_etcd.testing.servers import etcd_cluster

    (tmp_path / "pw").write_text("pw-1")
    # Simple tokens that expire after 1 s without use (etcd's default is 300 s).
    with etcd_cluster(tmp_path / "etcd", extra_args=["--auth-token-ttl", "1"]) as cluster:
        cluster.enable_auth("agent", "pw-1")
        harness = AdapterHarness(EtcdStateStore, endpoint=cluster.endpoint,
                                 conf={"username": "agent", "password_file": str(tmp_path / "pw"), "read_timeout": 10})
        adapter = harness.adapter(harness.new_run_id())
        first = adapter.cas("state", None, b"1")
        calls = []
        original = client_module.EtcdClient._authenticate

        def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(1)
            return original(self, *args, **kwargs)

        client_module.EtcdClient._authenticate = counting  # type: ignore[method-assign]
        try:
            time.sleep(2.5)  # the token expires (the server checks every second)
            assert adapter.read("state").value == b"1"  # "invalid auth token" -> authenticate once more
            assert adapter.cas("state", first.token, b"2").applied
        finally:
            client_module.EtcdClient._authenticate = original  # type: ignore[method-assign]
        assert len(calls) == 1
