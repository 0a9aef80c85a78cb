"""Sentinel: one master, one replica, one Sentinel; a forced failover mid-rendezvous."""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

import pytest

from rdzv_core.testing import AdapterHarness
from rdzv_core.testing.rendezvous import make_handlers, ranks_of
from rdzv_redis.adapter import RedisStateStore
from rdzv_redis.testing.servers import RedisServer, plain_server, replica_of, sentinel_for

MASTER_NAME = "rdzvmaster"


def _until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception as exc:  # noqa: BLE001 - servers still settling
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


@pytest.fixture(scope="module")
def sentinel_group(
    redis_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RedisServer, RedisServer, RedisServer]]:
    tmp_path = tmp_path_factory.mktemp("sentinel-group")
    master = plain_server(tmp_path / "master").start()
    replica = replica_of(tmp_path / "replica", master).start()
    sentinel = None
    try:
        _until(lambda: replica.admin().info("replication")["master_link_status"] == "up", 20, "replica sync")
        sentinel = sentinel_for(tmp_path / "sentinel", master, MASTER_NAME).start()
        admin = sentinel.admin()
        _until(
            lambda: any(r.get("port") == replica.port or r.get("port") == str(replica.port)
                        for r in admin.sentinel_slaves(MASTER_NAME)),
            20, "the Sentinel to discover the replica",
        )
        yield master, replica, sentinel
    finally:
        for server in (sentinel, replica, master):
            if server is not None:
                server.stop()


def _master_port(sentinel: RedisServer) -> int:
    host, port = sentinel.admin().sentinel_get_master_addr_by_name(MASTER_NAME)
    return int(port)


def _force_failover(sentinel: RedisServer, old_master: RedisServer, new_master: RedisServer) -> None:
    """Fail over, and demote the old master at once.

    Until then Redis itself may lose writes that reach the old master (its
    replication is asynchronous; see docs/stores/redis.md, "Sentinel"); the
    adapter switches masters on the Sentinels' +switch-master event.
    """
    admin = sentinel.admin()
    _until(lambda: admin.execute_command("SENTINEL", "FAILOVER", MASTER_NAME), 20, "SENTINEL FAILOVER accepted")
    _until(lambda: _master_port(sentinel) == new_master.port, 30, "the Sentinel to report the new master")
    _until(lambda: new_master.admin().info("replication")["role"] == "master", 30, "the replica to be promoted")
    # Sentinel demotes the old master only after noticing it again (up to
    # ~20 s); do at once what it will do, as an operator fencing it would.
    old_master.admin().replicaof("127.0.0.1", new_master.port)
    _until(lambda: old_master.admin().info("replication")["role"] == "slave", 30, "the old master to be demoted")


def test_failover_during_a_rendezvous_completes(sentinel_group: tuple[RedisServer, RedisServer, RedisServer]) -> None:
    master, replica, sentinel = sentinel_group
    harness = AdapterHarness(
        RedisStateStore, endpoint=sentinel.endpoint,
        conf={"sentinel_master": MASTER_NAME, "read_timeout": 30, "connect_timeout": 5}, backend_name="redis",
    )
    probe = harness.adapter(harness.new_run_id())
    assert f"master '{MASTER_NAME}'" in probe.endpoint
    token = probe.cas("k", None, b"before").token

    # Heartbeats outlive the failover: on a loaded machine its steps below can
    # take longer than a short TTL, and evicting the first agent as dead is
    # not what this test is about.
    handlers = make_handlers(harness, 2, 2, 2, keep_alive_interval=5, keep_alive_max_attempt=24)
    results: list[Any] = [None, None]
    errors: list[BaseException] = []

    def join(index: int) -> None:
        try:
            results[index] = handlers[index].next_rendezvous()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    first = threading.Thread(target=join, args=(0,))
    first.start()
    time.sleep(1.0)  # the first agent has joined and is waiting for the second
    _force_failover(sentinel, master, replica)
    second = threading.Thread(target=join, args=(1,))
    second.start()
    for thread in (first, second):
        thread.join(120)
    try:
        assert not errors, errors
        assert not first.is_alive() and not second.is_alive(), "rendezvous did not finish after the failover"
        assert ranks_of(results) == ([0, 1], {2})
        # The adapter follows the master: writes land on the promoted replica.
        after = probe.cas("k", token, b"after")
        assert after.applied
        assert replica.admin().get(probe.namespace.data("k")) == b"after"
    finally:
        handlers[0].shutdown()
        probe.close()


def test_unknown_master_name_fails_at_start(sentinel_group: tuple[RedisServer, RedisServer, RedisServer]) -> None:
    from torch.distributed.elastic.rendezvous import RendezvousConnectionError

    from rdzv_core.handler import connect_adapter

    _master, _replica, sentinel = sentinel_group
    harness = AdapterHarness(
        RedisStateStore, endpoint=sentinel.endpoint,
        conf={"sentinel_master": "no-such-master", "read_timeout": 3, "connect_timeout": 2}, backend_name="redis",
    )
    started = time.monotonic()
    with pytest.raises(RendezvousConnectionError, match="no-such-master"):
        connect_adapter(harness.params(), harness.registry())
    assert time.monotonic() - started < 12
