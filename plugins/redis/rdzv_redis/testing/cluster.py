"""A real Redis Cluster for tests: masters (and replicas) made by ``redis-cli --cluster create``.

Each node is a :class:`~rdzv_redis.testing.servers.RedisServer` started with
``cluster-enabled yes`` on a free loopback port; ``redis-cli --cluster
create`` assigns the slots. ``cluster-node-timeout`` is short, so a killed
master's replica is promoted within a few seconds.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from rdzv_redis.testing.servers import RedisServer, ServerBinaryMissing, free_port

NODE_TIMEOUT_MS = 1000
#: A cluster node also listens on its port + 10000 (the cluster bus).
BUS_OFFSET = 10000


def cluster_port() -> int:
    """A free port whose bus port (+10000) was free too a moment ago."""
    for _ in range(200):
        port = free_port()
        if port + BUS_OFFSET > 65535:
            continue
        try:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port + BUS_OFFSET))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair (port, port + 10000) for a cluster node")


def find_redis_cli() -> str:
    """The ``redis-cli`` binary (shipped with Debian's redis-server package)."""
    found = shutil.which("redis-cli")
    if found is None:
        raise ServerBinaryMissing("redis-cli not found on PATH: install Debian's redis-server (apt-get install redis-server)")
    return found


@dataclass
class RedisCluster:
    """``masters`` masters with ``replicas`` replicas each, on loopback."""

    workdir: Path
    masters: int = 3
    replicas: int = 1
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def endpoints(self) -> str:
        """Every node's ``127.0.0.1:port``, comma-separated (seed nodes)."""
        return ",".join(node.endpoint for node in self.nodes)

    def start(self, timeout: float = 60.0) -> RedisCluster:
        """Start the nodes, create the cluster and wait until every node says ``cluster_state:ok``."""
        for i in range(self.masters * (1 + self.replicas)):
            lines = ["cluster-enabled yes", "cluster-config-file nodes.conf",
                     f"cluster-node-timeout {NODE_TIMEOUT_MS}", "cluster-replica-validity-factor 0"]
            self.nodes.append(RedisServer(self.workdir / f"node{i}", lines, port=cluster_port()).start())
        command = [find_redis_cli(), "--cluster", "create", *[n.endpoint for n in self.nodes],
                   "--cluster-replicas", str(self.replicas), "--cluster-yes"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)  # noqa: S603
        if result.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
        self.wait_ok(timeout)
        return self

    def wait_ok(self, timeout: float = 60.0, nodes: list[RedisServer] | None = None) -> None:
        """Wait until every live node (or ``nodes``) reports ``cluster_state:ok``."""
        deadline = time.monotonic() + timeout
        watched = [n for n in (nodes or self.nodes) if n.process is not None]
        while True:
            states = []
            for node in watched:
                try:
                    states.append(node.admin().execute_command("CLUSTER", "INFO").decode().split("\r\n")[0])
                except Exception as exc:  # noqa: BLE001 - not up yet
                    states.append(str(exc))
            if all(state == "cluster_state:ok" for state in states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster not ok after {timeout} s: {states}")
            time.sleep(0.1)

    def master_of_key(self, key: str) -> RedisServer:
        """The live node that serves ``key``'s slot now (asked of any live node)."""
        live = [n for n in self.nodes if n.process is not None]
        admin = live[0].admin()
        slot = admin.execute_command("CLUSTER", "KEYSLOT", key)
        for first, last, owner, *_replicas in admin.execute_command("CLUSTER", "SLOTS"):
            if first <= slot <= last:
                found = next((n for n in live if n.port == int(owner[1])), None)
                if found is not None:
                    return found
        raise RuntimeError(f"no live master serves slot {slot}")

    def wait_for_failover(self, key: str, timeout: float = 60.0) -> RedisServer:
        """Wait until a live node (a promoted replica) serves ``key``'s slot
        and the cluster is ok again; return that node."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                promoted = self.master_of_key(key)
                self.wait_ok(max(0.1, deadline - time.monotonic()))
                return promoted
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()


@contextmanager
def redis_cluster(workdir: Path, masters: int = 3, replicas: int = 1) -> Iterator[RedisCluster]:
    """Start a cluster, yield it, stop it."""
    cluster = RedisCluster(workdir, masters, replicas)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
