"""Store servers inside a :class:`~rdzv_core.testing.netlab.Lab`, and a probe
that watches a run's protocol keys from the store's namespace.

``redis-server`` (from ``PATH``, see :func:`rdzv_redis.testing.servers.find_redis_server`)
or ``etcd`` (:func:`rdzv_etcd.testing.servers.find_etcd`) listens on the store
host's lab address only (198.18.0.2). The test process has no route to it: it
reads the store through the probe, which runs in the store namespace.

Run as a module (``python -m rdzv_core.testing.netlab_store``) this file is the
helper that runs *inside* a lab namespace: ``ping`` waits until a store
answers, ``probe`` logs every change of a run's ``p/...`` keys as JSON lines
with wall-clock times.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from rdzv_core.testing.netlab import Lab

REDIS_PORT = 6379
ETCD_PORT = 2379


# -- store servers inside the lab -----------------------------------------------------


@dataclass
class LabServer:
    """A store server running in the lab's store namespace."""

    kind: str  # "redis" or "etcd"
    endpoint: str  # what agents pass as --rdzv-endpoint
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        """SIGKILL the server (the lab's data is thrown away)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's output, for failure messages."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else "(no log)"


def start_store(lab: Lab, kind: str, workdir: Path, timeout: float = 60) -> LabServer:
    """Start ``redis-server`` or ``etcd`` bound to the store host's lab address and
    wait until every lab node reaches it (which also proves the switch works)."""
    workdir.mkdir(parents=True, exist_ok=True)
    addr = lab.store.addr
    if kind == "redis":
        from rdzv_redis.testing.servers import find_redis_server

        argv = [find_redis_server(), "--bind", addr, "--port", str(REDIS_PORT), "--save", "", "--appendonly",
                "no", "--protected-mode", "no", "--dir", str(workdir), "--daemonize", "no"]
        endpoint = f"{addr}:{REDIS_PORT}"
    elif kind == "etcd":
        from rdzv_etcd.testing.servers import ELECTION_MS, HEARTBEAT_MS, find_etcd, supports_flag

        binary = find_etcd()
        client, peer = f"http://{addr}:{ETCD_PORT}", f"http://{addr}:{ETCD_PORT + 1}"
        argv = [binary, "--name", "lab", "--data-dir", str(workdir / "data"), "--listen-client-urls", client,
                "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls",
                peer, "--initial-cluster", f"lab={peer}", "--initial-cluster-state", "new",
                "--heartbeat-interval", str(HEARTBEAT_MS), "--election-timeout", str(ELECTION_MS),
                "--log-level", "warn"]
        if supports_flag(binary, "--unsafe-no-fsync"):
            argv.append("--unsafe-no-fsync")
        endpoint = client
    else:
        raise ValueError(f"unknown store kind {kind!r} (redis or etcd)")
    log_path = workdir / f"{kind}.log"
    server = LabServer(kind, endpoint, lab.popen(lab.store, argv, log_path, hostname=False), log_path)
    for host in lab.hosts:
        result = lab.run(host, [sys.executable, "-m", __name__, "ping", kind, endpoint, str(timeout)], timeout + 30)
        if result.returncode != 0:
            server.stop()
            raise RuntimeError(f"{kind} at {endpoint} not reachable from {host.name} ({host.netns}): "
                               f"{result.stdout}{result.stderr}\nserver log:\n{server.log_tail()}")
    return server


@dataclass
class KeyProbe:
    """The ``probe`` helper running in the store namespace: a log of every change
    of the run's ``p/`` keys (see :func:`events`)."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def events(self) -> list[dict[str, Any]]:
        """Every event so far: ``{"t": wall time, "ev": "new"|"chg"|"del"|"ready"|"error", "key", "value"}``
        (values are hex)."""
        if not self.log_path.exists():
            return []
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def wait_for(self, accept: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any] | None:
        """The first event ``accept`` takes, waiting up to ``timeout`` s (``None`` if none)."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((e for e in self.events() if accept(e)), None)
            if found is not None or time.monotonic() > deadline or self.process.poll() is not None:
                return found
            time.sleep(0.1)

    def stop(self) -> None:
        """End the probe."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def start_probe(lab: Lab, server: LabServer, run_id: str, log_path: Path, interval: float = 0.05) -> KeyProbe:
    """Start the key probe for ``run_id`` next to the store and wait for its first read."""
    argv = [sys.executable, "-m", __name__, "probe", server.kind, server.endpoint, run_id, str(interval)]
    probe = KeyProbe(lab.popen(lab.store, argv, log_path, hostname=False), log_path)
    if probe.wait_for(lambda e: e.get("ev") == "ready", 60) is None:
        probe.stop()
        raise RuntimeError(f"key probe did not start: {log_path.read_text(errors='replace')[-2000:]}")
    return probe


# -- the helpers that run inside a lab namespace (python -m rdzv_core.testing.netlab_store) ----


def _reader(kind: str, endpoint: str, run_id: str | None) -> Callable[[], dict[str, bytes]]:
    """A function returning the run's ``p/`` keys (relative name -> value); with
    ``run_id=None`` it only checks that the server answers."""
    if kind == "redis":
        import redis

        from rdzv_redis.keys import Namespace

        host, port = endpoint.rsplit(":", 1)
        client = redis.Redis(host, int(port), socket_timeout=2, socket_connect_timeout=2)
        space = Namespace("rdzv", run_id or "")
        start = len(space.data(""))

        def read_redis() -> dict[str, bytes]:
            if run_id is None:
                client.ping()
                return {}
            names = sorted(client.scan_iter(match=space.match("p/"), count=1000))
            values = client.mget(names) if names else []
            return {n.decode()[start:]: v for n, v in zip(names, values) if v is not None}

        return read_redis
    import grpc
    from pyetcd import etcdrpc

    from rdzv_etcd.keys import KeySpace, prefix_range_end

    stub = etcdrpc.KVStub(grpc.insecure_channel(endpoint.split("://", 1)[-1]))
    base = KeySpace("/rdzv", run_id or "").data
    wanted = base + b"p/"

    def read_etcd() -> dict[str, bytes]:
        request = etcdrpc.RangeRequest(key=wanted, range_end=prefix_range_end(wanted))
        reply = stub.Range(request, timeout=2)
        return {kv.key[len(base):].decode(): kv.value for kv in reply.kvs}

    return read_etcd


def _emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


def _ping(kind: str, endpoint: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    read = _reader(kind, endpoint, None)
    while True:
        try:
            read()
            return 0
        except Exception as exc:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline:
                print(f"{kind} at {endpoint} did not answer within {timeout} s: {exc}")
                return 1
            time.sleep(0.1)


def _probe(kind: str, endpoint: str, run_id: str, interval: float) -> None:
    read = _reader(kind, endpoint, run_id)
    known: dict[str, bytes] | None = None
    failing = False
    while True:
        try:
            now = read()
        except Exception as exc:  # noqa: BLE001 - record and keep probing
            if not failing:
                _emit({"t": time.time(), "ev": "error", "error": f"{type(exc).__name__}: {exc}"})
            failing = True
            time.sleep(interval)
            continue
        failing, t = False, time.time()
        if known is None:
            _emit({"t": t, "ev": "ready"})
            known = {}
        for key, value in now.items():
            if key not in known or known[key] != value:
                _emit({"t": t, "ev": "new" if key not in known else "chg", "key": key, "value": value.hex()})
        for key in known.keys() - now.keys():
            _emit({"t": t, "ev": "del", "key": key})
        known = now
        time.sleep(interval)


def main(argv: Sequence[str] | None = None) -> int:
    """``ping KIND ENDPOINT [TIMEOUT]`` or ``probe KIND ENDPOINT RUN_ID [INTERVAL]``."""
    parser = argparse.ArgumentParser(prog="python -m rdzv_core.testing.netlab_store")
    sub = parser.add_subparsers(dest="what", required=True)
    ping = sub.add_parser("ping")
    ping.add_argument("kind", choices=["redis", "etcd"])
    ping.add_argument("endpoint")
    ping.add_argument("timeout", type=float, nargs="?", default=30.0)
    probe = sub.add_parser("probe")
    probe.add_argument("kind", choices=["redis", "etcd"])
    probe.add_argument("endpoint")
    probe.add_argument("run_id")
    probe.add_argument("interval", type=float, nargs="?", default=0.05)
    args = parser.parse_args(argv)
    if args.what == "ping":
        return _ping(args.kind, args.endpoint, args.timeout)
    _probe(args.kind, args.endpoint, args.run_id, args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
