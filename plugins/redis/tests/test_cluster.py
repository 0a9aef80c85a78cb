"""Redis Cluster (``--rdzv-conf cluster=true``): a real cluster of 3 masters
with a replica each, made by ``redis-cli --cluster create``; the conformance
suite, a master killed during a rendezvous, and an rdzv-run launch."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from torch.distributed.elastic.rendezvous import RendezvousParameters

from rdzv_core.errors import RdzvConfigError
from rdzv_core.guarded import GuardedStore
from rdzv_core.settings import CoreSettings
from rdzv_core.testing import AdapterHarness, ConformanceSuite
from rdzv_core.testing.launch import assert_all_reduced, run_agents
from rdzv_core.testing.rendezvous import Joins, make_handlers, ranks_of
from rdzv_redis.adapter import RedisStateStore
from rdzv_redis.errors import is_transient
from rdzv_redis.settings import CONF_KEYS, RedisSettings, parse_settings
from rdzv_redis.testing.cluster import RedisCluster, find_redis_cli, redis_cluster
from rdzv_redis.testing.servers import RedisServer, ServerBinaryMissing


@pytest.fixture(scope="module")
def cluster(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """One cluster for the module's conformance run (the fault test makes its own)."""
    try:
        find_redis_cli()
    except ServerBinaryMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as started:
        yield started


def cluster_harness(cluster: RedisCluster, **conf: object) -> AdapterHarness:
    """A harness on two of the cluster's nodes as seeds."""
    seeds = ",".join(node.endpoint for node in cluster.nodes[:2])
    return AdapterHarness(RedisStateStore, endpoint=seeds, conf={"cluster": "true", **conf}, backend_name="redis")


class TestRedisCluster(ConformanceSuite):
    """The whole conformance suite on a Redis Cluster."""

    @pytest.fixture
    def harness(self, cluster: RedisCluster) -> AdapterHarness:
        return cluster_harness(cluster)


def test_the_run_lives_on_one_slot_and_waits_use_sharded_pubsub(cluster: RedisCluster) -> None:
    adapter = cluster_harness(cluster).adapter("slot-check")
    try:
        adapter.write("a", b"1")
        adapter.add("b", 2)
        owner = cluster.master_of_key("rdzv:{slot-check}:a")
        assert set(owner.admin().keys("rdzv:{slot-check}*")) == {
            b"rdzv:{slot-check}:a", b"rdzv:{slot-check}#v:a", b"rdzv:{slot-check}:b", b"rdzv:{slot-check}#v:b",
        } | set(owner.admin().keys("rdzv:{slot-check}#op:*"))
        assert adapter.wait_read("a", 1) == b"1"
        shard_channels = set(owner.admin().execute_command("PUBSUB", "SHARDCHANNELS"))
        assert b"rdzv:{slot-check}#notify:a" in shard_channels or b"rdzv:{slot-check}#notify:#idle" in shard_channels
    finally:
        adapter.close()


def kill_node(node: RedisServer) -> None:
    """SIGKILL a node (a crash) and forget its process."""
    process, node.process = node.process, None
    assert process is not None
    process.kill()
    process.wait(10)


def joined(node: RedisServer, run: str) -> bool:
    """Whether the run has keys on ``node`` other than the probe's: the first agent's join."""
    return any(b"probe" not in key for key in node.admin().keys(f"rdzv:{{{run}}}*"))


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["torch", "scalable"])
def test_the_runs_master_killed_during_a_rendezvous_its_replica_takes_over(
    redis_binary: str, tmp_path: Path, protocol: str
) -> None:
    """The first agent joins; the master serving the run's slot is killed;
    its replica is promoted; the second agent joins and both complete."""
    with redis_cluster(tmp_path / "cluster") as cluster:
        harness = cluster_harness(cluster, read_timeout=30, connect_timeout=5)
        # Heartbeats outlive the failover (see the Sentinel test).
        handlers = make_handlers(harness, 2, 2, 2, protocol=protocol, keep_alive_interval=5, keep_alive_max_attempt=24)
        run = handlers[0].get_run_id()
        joins = Joins(handlers)
        # A writer that keeps writing through the failover, as the core
        # retries (within read_timeout) what fails while no master serves.
        probe = GuardedStore(harness.adapter(run), "redis", 30)
        written: list[int] = []
        probe_errors: list[BaseException] = []
        stop = threading.Event()

        def keep_writing() -> None:
            while not stop.is_set():
                try:
                    probe.write("probe", str(len(written)).encode())
                    written.append(len(written))
                except BaseException as exc:  # noqa: BLE001 - reported below
                    probe_errors.append(exc)
                    return
                time.sleep(0.05)

        writer = threading.Thread(target=keep_writing)
        writer.start()
        joins.start(0)
        owner = cluster.master_of_key(f"rdzv:{{{run}}}:x")
        deadline = time.monotonic() + 30
        while not joined(owner, run) and time.monotonic() < deadline:
            time.sleep(0.1)
        owner.admin().execute_command("WAIT", 1, 5000)  # replicated: this test is not about async replication
        kill_node(owner)
        promoted = cluster.wait_for_failover(f"rdzv:{{{run}}}:x")
        before = len(written)
        deadline = time.monotonic() + 30
        while len(written) < before + 5 and not probe_errors and time.monotonic() < deadline:
            time.sleep(0.05)  # the writer goes on on the promoted replica
        stop.set()
        writer.join(60)
        assert not probe_errors, probe_errors
        assert promoted.admin().get(f"rdzv:{{{run}}}:probe") == str(written[-1]).encode()
        joins.start(1)
        try:
            assert ranks_of(joins.finish()) == ([0, 1], {2})
        finally:
            handlers[0].shutdown()
            for handler in handlers:
                handler._stop_heartbeats()  # type: ignore[attr-defined]  # noqa: SLF001
            probe.adapter.close()


# -- configuration and error classification (no server) ----------------------------------


def cluster_settings(endpoint: str, **conf: object) -> RedisSettings:
    params = RendezvousParameters("redis", endpoint, "job", 1, 1, **conf)
    return parse_settings(CoreSettings.parse(params, CONF_KEYS))


def test_cluster_takes_a_list_of_seed_nodes() -> None:
    settings = cluster_settings("n1:7000,n2,[::1]:7002", cluster="true")
    assert settings.cluster and [e.netloc for e in settings.endpoints] == ["n1:7000", "n2:6379", "[::1]:7002"]
    assert settings.describe == "redis://cluster via n1:7000,n2:6379,[::1]:7002"


@pytest.mark.parametrize(
    ("endpoint", "conf", "message"),
    [
        ("n1,n2", {}, "or of Redis Cluster seed nodes (--rdzv-conf cluster=true)"),
        ("n1,n2", {"cluster": "true", "sentinel_master": "m"}, "a Redis Cluster has no Sentinels"),
        ("n1", {"cluster": "true", "db": "2"}, "a Redis Cluster has database 0 only; drop db=2"),
        ("redis://n1/3", {"cluster": "true"}, "a Redis Cluster has database 0 only; drop db=3"),
        ("unix:///run/redis.sock", {"cluster": "true"}, "a unix:// endpoint must be the only endpoint"),
    ],
)
def test_cluster_configuration_errors(endpoint: str, conf: dict[str, str], message: str) -> None:
    with pytest.raises(RdzvConfigError, match=re.escape(message)):
        cluster_settings(endpoint, **conf)


def test_failover_replies_are_transient() -> None:
    from redis._parsers.base import BaseParser
    from redis.exceptions import SlotNotCoveredError

    for reply in ("CLUSTERDOWN The cluster is down", "TRYAGAIN Multiple keys request during rehashing of slot",
                  "READONLY You can't write against a read only replica."):
        assert is_transient(BaseParser.parse_error(reply)), reply  # redis-py strips the prefix
    assert is_transient(SlotNotCoveredError("Command # 1 (SET) of pipeline caused error: no node serves slot 5"))
    assert not is_transient(BaseParser.parse_error("WRONGPASS invalid username-password pair"))


def test_scripts_announce_on_shard_channels() -> None:
    from rdzv_redis import scripts

    for script in (scripts.CAS, scripts.WRITE, scripts.ADD):
        assert "redis.call('PUBLISH'," in script
        assert "redis.call('PUBLISH'," not in scripts.sharded(script) and "redis.call('SPUBLISH'," in scripts.sharded(script)


# -- a launch ----------------------------------------------------------------------------------


@pytest.mark.launch
def test_rdzv_run_on_the_cluster(tmp_path: Path, cluster: RedisCluster) -> None:
    conf = {"last_call_timeout": 1, "keep_alive_interval": 1, "keep_alive_max_attempt": 2, "read_timeout": 30,
            "cluster": "true"}
    seeds = ",".join(node.endpoint for node in cluster.nodes[:3])
    agents = run_agents(tmp_path, "rdzv-run", "redis", [seeds] * 2, "e2e-cluster", [conf] * 2, nproc_per_node=1)
    assert_all_reduced(agents, 2)
    seal = "rdzv:{e2e-cluster}:p/r/0/seal"  # the default protocol sealed round 0 on the run's slot
    assert cluster.master_of_key(seal).admin().exists(seal)
