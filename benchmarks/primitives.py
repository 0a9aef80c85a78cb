"""1b. The scalable protocol's primitives through the core's guard.

The scalable protocol frames only its seal; its hot path is the guarded
store's ``add``, ``write``, ``read_many`` and ``wait_read`` (the last on a
key that is already there, as a woken node's read is). Each is timed
through :class:`~rdzv_core.guarded.GuardedStore` and on the adapter alone,
interleaved call by call on one connection, so the difference is the
guard: a plain ``try`` around the adapter call, plus the fork check.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from benchmarks.instruments import base_registry
from benchmarks.overhead import ADAPTERS, _params, interleaved, pin_for_round_trips
from benchmarks.servers import Servers
from benchmarks.stats import median, ratio

#: Keys per ``read_many`` (a sealer reads its round's slots in one call).
READ_MANY_KEYS = 16


@dataclass
class PrimitiveRow:
    """One adapter × primitive: medians through the guard and alone (µs)."""

    adapter: str
    op: str
    guarded_median_us: float
    adapter_median_us: float
    ratio: float


def _calls(store: Any) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """(through the guard, adapter alone) per primitive, on keys of their own."""
    adapter = store.adapter
    keys = [f"slot/{i}" for i in range(READ_MANY_KEYS)]
    for key in keys:
        adapter.write(key, b"node-descriptor-" + key.encode())
    adapter.write("seal", b"x" * 64)
    return {
        "add": (lambda: store.add("tickets-g", 1), lambda: adapter.add("tickets-a", 1)),
        "write": (lambda: store.write("beat-g", b"12"), lambda: adapter.write("beat-a", b"12")),
        f"read_many ({READ_MANY_KEYS} keys)": (lambda: store.read_many(keys), lambda: adapter.read_many(keys)),
        "wait_read (present)": (lambda: store.wait_read("seal", 5.0), lambda: adapter.wait_read("seal", 5.0)),
    }


def measure_adapter(kind: str, servers: Servers, workdir: Path, iterations: int, warmup: int) -> list[PrimitiveRow]:
    """Every primitive of one adapter."""
    from rdzv_core.handler import connect_adapter, guard_adapter

    adapter, core = connect_adapter(_params(kind, servers, workdir), base_registry())
    store, _codec = guard_adapter(adapter, core)
    rows = []
    try:
        gc.collect()
        gc.disable()
        for op, (guarded, alone) in _calls(store).items():
            g, a = interleaved([guarded, alone], iterations, warmup)
            rows.append(PrimitiveRow(ADAPTERS[kind], op, median(g), median(a), ratio(median(g), median(a))))
    finally:
        gc.enable()
        adapter.purge()
        adapter.close()
    return rows


def run(servers: Servers, workdir: Path, kinds: tuple[str, ...], iterations: int, warmup: int,
        log: Callable[[str], None] = print) -> list[PrimitiveRow]:
    """Every adapter in ``kinds``, client pinned as in section 1."""
    undo = pin_for_round_trips(servers)
    rows: list[PrimitiveRow] = []
    try:
        for kind in kinds:
            for row in measure_adapter(kind, servers, workdir, iterations, warmup):
                log(f"  primitive {row.adapter:9} {row.op:22} guarded {row.guarded_median_us:8.1f} µs  "
                    f"adapter {row.adapter_median_us:8.1f} µs  ratio {row.ratio:.2f}")
                rows.append(row)
    finally:
        undo()
    return rows
