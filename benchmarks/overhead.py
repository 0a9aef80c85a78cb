"""1. Overhead of the core: ``RdzvBackend.set_state``/``get_state`` vs the raw client.

For every adapter, the core's backend (framing, CRC, nonce, retry guard,
token wrapping; LZ4 from 1 KiB) and a raw client of the same store do the
same operation on the same server, interleaved iteration by iteration (the
order alternates), so drift in machine load hits both alike. The client
process is pinned to one CPU and the servers to another where the machine
has two. Reported: median and p99 latency per side and the ratio of the
medians, with the lowest and highest ratio over five consecutive blocks.

``get_state`` re-reads the state the last ``set_state`` wrote, as agents
polling an unchanged rendezvous do: the backend recognises the bytes of the
frame it wrote and skips decoding them (a changed state is decoded in full,
at the cost section 5 reports as decode time).
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from benchmarks.instruments import base_registry
from benchmarks.payloads import state_bytes
from benchmarks.raw_clients import C10dRaw, EtcdRaw, RawClient, RedisRaw
from benchmarks.servers import Servers
from benchmarks.stats import median, percentile, ratio, spread

ADAPTERS = {"tcp": "TCPStore", "file": "FileStore", "redis": "Redis", "etcd": "etcd"}
BLOCKS = 5


@dataclass
class OverheadRow:
    """One adapter × operation × payload."""

    adapter: str
    op: str
    payload: str
    payload_bytes: int
    ours_median_us: float
    ours_p99_us: float
    adapter_median_us: float
    raw_median_us: float
    raw_p99_us: float
    ratio: float
    ratio_low: float
    ratio_high: float


def _params(kind: str, servers: Servers, workdir: Path) -> Any:
    from torch.distributed.elastic.rendezvous import RendezvousParameters

    run = f"overhead-{os.getpid()}-{time.monotonic_ns()}"
    if kind == "tcp":
        return RendezvousParameters("rdzv-c10d", servers.endpoints["tcp"], run, 1, 1, is_host="false")
    if kind == "file":
        return RendezvousParameters("rdzv-c10d", str(workdir / f"rdzv-{run}"), run, 1, 1, store_type="file")
    return RendezvousParameters(f"rdzv-{kind}", servers.endpoints[kind], run, 1, 1)


def _raw(kind: str, payload: bytes, servers: Servers, workdir: Path) -> RawClient:
    if kind == "tcp":
        return C10dRaw.tcp(payload, servers.endpoints["tcp"])
    if kind == "file":
        return C10dRaw.file(payload, str(workdir / f"raw-{time.monotonic_ns()}"))
    if kind == "redis":
        return RedisRaw(payload, servers.endpoints["redis"])
    return EtcdRaw(payload, servers.endpoints["etcd"])


def interleaved(calls: list[Callable[[], Any]], iterations: int, warmup: int) -> list[list[float]]:
    """Latencies (µs) of every call in ``calls``, one of each per iteration,
    the order rotating from one iteration to the next."""
    sinks: list[list[float]] = [[] for _ in calls]
    clock = time.perf_counter_ns
    count = len(calls)
    for i in range(warmup + iterations):
        for j in range(count):
            k = (i + j) % count
            start = clock()
            calls[k]()
            elapsed = clock() - start
            if i >= warmup:
                sinks[k].append(elapsed / 1000)
    return sinks


def _row(adapter: str, op: str, payload: str, size: int, a: list[float], m: list[float], b: list[float]) -> OverheadRow:
    step = max(1, len(a) // BLOCKS)
    blocks = [ratio(median(a[i:i + step]), median(b[i:i + step])) for i in range(0, step * BLOCKS, step)]
    low, high = spread(blocks)
    return OverheadRow(adapter, op, payload, size, median(a), percentile(a, 99), median(m), median(b),
                       percentile(b, 99), ratio(median(a), median(b)), low, high)


def measure_adapter(kind: str, servers: Servers, workdir: Path, nodes: int, iterations: int, warmup: int) -> list[OverheadRow]:
    """set_state and get_state of one adapter at one payload size."""
    from rdzv_core.codec import FrameCodec, new_nonce
    from rdzv_core.handler import connect_adapter, create_backend

    payload = state_bytes(nodes)
    backend, _ = create_backend(_params(kind, servers, workdir), base_registry())
    adapter, core = connect_adapter(_params(kind, servers, workdir), base_registry())
    raw = _raw(kind, payload, servers, workdir)
    token: list[Any] = [None]
    codec = FrameCodec(core.secret, core.compress_threshold)
    frames = [codec.encode(payload, new_nonce()) for _ in range(2)]
    version: list[Any] = [None, 0]

    def adapter_cas() -> None:
        version[1] ^= 1
        result = adapter.cas("state", version[0], frames[version[1]])
        if not result.applied:
            raise RuntimeError(f"{kind} adapter CAS lost with no competitor")
        version[0] = result.token

    def set_state() -> None:
        result = backend.set_state(payload, token[0])
        if result is None or not result[2]:
            raise RuntimeError(f"rdzv {kind} set_state lost with no competitor")
        token[0] = result[1]

    label = f"{nodes} nodes"
    try:
        gc.collect()
        gc.disable()
        a, m, b = interleaved([set_state, adapter_cas, raw.cas], iterations, warmup)
        rows = [_row(ADAPTERS[kind], "set_state (CAS)", label, len(payload), a, m, b)]
        a, m, b = interleaved([backend.get_state, lambda: adapter.read("state"), raw.get], iterations, warmup)
        rows.append(_row(ADAPTERS[kind], "get_state", label, len(payload), a, m, b))
    finally:
        gc.enable()
        raw.close()
        adapter.close()
        _close_backend(backend)
    return rows


def _close_backend(backend: Any) -> None:
    # RdzvBackend has no close(); reach the adapter the core wraps.
    adapter = getattr(getattr(backend, "_store", None), "adapter", None)
    if adapter is not None:
        adapter.close()


def pin_for_round_trips(servers: Servers) -> Callable[[], None]:
    """Pin this process to the last CPU and the servers to the others;
    return a function that undoes it."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return lambda: None
    mine = {cpus[-1]}
    os.sched_setaffinity(0, mine)
    servers.pin(set(cpus[:-1]))

    def undo() -> None:
        os.sched_setaffinity(0, set(cpus))
        servers.unpin()

    return undo


def run(servers: Servers, workdir: Path, kinds: tuple[str, ...], node_counts: tuple[int, ...],
        iterations: int, warmup: int, log: Callable[[str], None] = print) -> list[OverheadRow]:
    """Every adapter in ``kinds`` at every payload size in ``node_counts``."""
    undo = pin_for_round_trips(servers)
    rows: list[OverheadRow] = []
    try:
        for kind in kinds:
            for nodes in node_counts:
                new = measure_adapter(kind, servers, workdir, nodes, iterations, warmup)
                for row in new:
                    log(f"  overhead {row.adapter:9} {row.op:16} {row.payload:9} ours {row.ours_median_us:8.1f} µs  "
                        f"adapter {row.adapter_median_us:8.1f} µs  raw {row.raw_median_us:8.1f} µs  ratio {row.ratio:.2f}")
                rows.extend(new)
    finally:
        undo()
    return rows
