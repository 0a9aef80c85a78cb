"""The stores every benchmark runs against, started on free loopback ports.

redis-server and etcd come from the adapters' own test helpers
(:mod:`rdzv_redis.testing.servers`, :mod:`rdzv_etcd.testing.servers`); the
TCPStore server runs in a child process of its own so that, like the other
two, it does not share the agents' interpreter. :meth:`Servers.stats`
reads the server-side traffic counters where the store has them (Redis
``INFO``, etcd's Prometheus ``/metrics``), an instrument independent of
both client libraries.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ServerStats:
    """Store-side totals: requests handled and bytes in/out on the wire."""

    requests: float = 0.0
    bytes_in: float = 0.0
    bytes_out: float = 0.0

    def __sub__(self, other: ServerStats) -> ServerStats:
        return ServerStats(self.requests - other.requests, self.bytes_in - other.bytes_in, self.bytes_out - other.bytes_out)


@dataclass
class Servers:
    """Live stores: ``endpoints[kind]`` for ``tcp``, ``redis``, ``etcd``."""

    kinds: tuple[str, ...]
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rdzv-bench-")))
    endpoints: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    _handles: dict[str, Any] = field(default_factory=dict)

    def start(self) -> Servers:
        """Start every server of ``kinds`` (skips none: a missing binary raises)."""
        tcp = self._spawn_tcpstore() if "tcp" in self.kinds else None  # imports torch: overlap it
        if "redis" in self.kinds:
            from rdzv_redis.testing.servers import plain_server

            server = plain_server(self.workdir / "redis").start()
            self._handles["redis"] = server
            self.endpoints["redis"] = server.endpoint
            self.pids["redis"] = server.process.pid  # type: ignore[union-attr]
        if "etcd" in self.kinds:
            from rdzv_etcd.testing.servers import EtcdCluster

            cluster = EtcdCluster(self.workdir / "etcd", 1).start()
            self._handles["etcd"] = cluster
            self.endpoints["etcd"] = cluster.endpoint
            self.pids["etcd"] = cluster.members[0].process.pid  # type: ignore[union-attr]
        if tcp is not None:
            self.endpoints["tcp"] = self._tcpstore_port(tcp)
        return self

    @staticmethod
    def _spawn_tcpstore() -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        return subprocess.Popen([sys.executable, "-m", "benchmarks.tcpstore_server"], stdin=subprocess.PIPE,  # noqa: S603
                                stdout=subprocess.PIPE, env=env, cwd=ROOT)

    def _tcpstore_port(self, proc: subprocess.Popen[bytes]) -> str:
        line = proc.stdout.readline().decode().strip()  # type: ignore[union-attr]
        if not line.isdigit():
            proc.kill()
            raise RuntimeError(f"the TCPStore server did not start (said {line!r})")
        self._handles["tcp"] = proc
        self.pids["tcp"] = proc.pid
        return f"127.0.0.1:{line}"

    def pin(self, cpus: set[int]) -> None:
        """Restrict every server process to ``cpus`` (best effort)."""
        for pid in self.pids.values():
            try:
                os.sched_setaffinity(pid, cpus)
            except OSError:
                pass

    def unpin(self) -> None:
        """Let every server run on any CPU again."""
        self.pin(set(range(os.cpu_count() or 1)))

    def stats(self, kind: str) -> ServerStats | None:
        """Server-side traffic totals for ``redis`` or ``etcd``; ``None`` otherwise."""
        try:
            if kind == "redis":
                info = self._handles["redis"].admin().info("stats")
                return ServerStats(info["total_commands_processed"], info["total_net_input_bytes"],
                                   info["total_net_output_bytes"])
            if kind == "etcd":
                return _etcd_stats(self.endpoints["etcd"])
        except Exception:  # noqa: BLE001 - a cross-check, never fatal
            return None
        return None

    def versions(self) -> dict[str, str]:
        """Server versions for the report."""
        out: dict[str, str] = {}
        if "redis" in self._handles:
            try:
                out["redis"] = str(self._handles["redis"].admin().info("server")["redis_version"])
            except Exception:  # noqa: BLE001
                out["redis"] = "?"
        if "etcd" in self._handles:
            try:
                out["etcd"] = str(self._handles["etcd"].members[0].status().version)
            except Exception:  # noqa: BLE001
                out["etcd"] = "?"
        return out

    def stop(self) -> None:
        """Stop every server started here."""
        for kind, handle in list(self._handles.items()):
            try:
                if kind == "tcp":
                    handle.stdin.close()
                    handle.wait(10)
                else:
                    handle.stop()
            except Exception:  # noqa: BLE001
                if kind == "tcp":
                    handle.kill()
        self._handles.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Servers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+)$")


def _etcd_stats(endpoint: str) -> ServerStats:
    with urllib.request.urlopen(f"{endpoint}/metrics", timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    stats = ServerStats()
    for line in text.splitlines():
        match = _METRIC.match(line)
        if not match:
            continue
        name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
        if name == "grpc_server_handled_total" and 'grpc_service="etcdserverpb.' in labels:
            stats.requests += value
        elif name == "etcd_network_client_grpc_received_bytes_total":
            stats.bytes_in += value
        elif name == "etcd_network_client_grpc_sent_bytes_total":
            stats.bytes_out += value
    return stats
