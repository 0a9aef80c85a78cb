"""3. Idle load: N rendezvoused agents doing what a torchrun agent does between
rounds — heartbeats (the handler's own timer) and a ``num_nodes_waiting()``
poll every ``monitor_interval`` (torchrun's default 0.1 s) — for a window of
``seconds``. Store calls and payload bytes per second come from the shared
instrument; for Redis and etcd the server's own traffic counters are read
as well.

Targets run in batches with at most one target per Redis/etcd server
(:func:`benchmarks.join.batches`): in a batch every target first joins on
its own (a join is CPU-bound), then their idle windows run side by side —
idle traffic is set by the agents' timers, not by CPU — and the batch is
closed before the next one starts, so a server's counters belong to one
target.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from benchmarks.agents import AgentGroup, NotAvailable, Target, settings_for
from benchmarks.counters import Snapshot
from benchmarks.join import batches, fan_out, timed_join
from benchmarks.servers import Servers, ServerStats


@dataclass
class IdleCell:
    """Traffic of one target's N idle agents over the window."""

    label: str
    n: int
    status: str
    seconds: float = 0.0
    counts: Snapshot | None = None
    server: ServerStats | None = None
    poll_errors: int = 0

    def per_second(self, value: float) -> float:
        """``value`` per second of the window."""
        return value / self.seconds if self.seconds else float("nan")


def _poll(handler: Any, stop: threading.Event, interval: float, errors: list[int]) -> None:
    while not stop.wait(interval):
        try:
            handler.num_nodes_waiting()
        except Exception:  # noqa: BLE001 - counted, the window goes on
            errors[0] += 1


def join(target: Target, n: int, join_timeout: float, tcp_pool: Any = None) -> tuple[AgentGroup, IdleCell | None]:
    """Create and join ``n`` agents; a cell only if that failed."""
    group = AgentGroup(target, n, n, settings_for(join_timeout), tcp_pool=tcp_pool)
    try:
        group.add_agents(n)
    except NotAvailable:
        return group, IdleCell(target.label, n, "not available")
    joined = timed_join(group.handlers, join_timeout, group.counters.snapshot)
    return group, None if joined.ok else IdleCell(target.label, n, joined.status)


def window(target: Target, group: AgentGroup, seconds: float, monitor_interval: float, servers: Servers) -> IdleCell:
    """Measure ``seconds`` of idling of a joined group."""
    n = len(group.handlers)
    stop = threading.Event()
    errors = [0]
    pollers = [threading.Thread(target=_poll, args=(h, stop, monitor_interval, errors), daemon=True)
               for h in group.handlers]
    before, server_before = group.counters.snapshot(), servers.stats(target.kind)
    started = time.monotonic()
    for poller in pollers:
        poller.start()
    time.sleep(seconds)
    after, server_after = group.counters.snapshot(), servers.stats(target.kind)
    elapsed = time.monotonic() - started
    stop.set()
    for poller in pollers:
        poller.join(10)
    server = server_after - server_before if server_before and server_after else None
    return IdleCell(target.label, n, "ok", elapsed, after - before, server, errors[0])


def run(targets: Sequence[Target], ns: Sequence[int], seconds: float, join_timeout: float, monitor_interval: float,
        servers: Servers, log: Callable[[str], None] = print, parallel: bool | str = "batched",
        tcp_pool: Any = None) -> list[IdleCell]:
    """Every target at every N. ``parallel=True`` (``--quick``) also joins
    concurrently and lets targets that share a server overlap, so the
    server-side counters are dropped."""
    cells: list[IdleCell] = []
    plan = batches(targets, lambda t: t.server) if parallel == "batched" else [list(range(len(targets)))]
    for n in ns:
        found: dict[int, IdleCell] = {}
        for batch in plan:
            chosen = [targets[i] for i in batch]
            joined = fan_out(lambda t: join(t, n, join_timeout, tcp_pool), chosen, parallel is True)
            try:
                ready = [(i, t, g) for i, t, (g, failed) in zip(batch, chosen, joined) if failed is None]
                windows = fan_out(lambda item: window(item[1], item[2], seconds, monitor_interval, servers),
                                  ready, bool(parallel))
                found.update({i: cell for (i, _, _), cell in zip(ready, windows)})
                found.update({i: failed for i, (_, failed) in zip(batch, joined) if failed is not None})
            finally:
                fan_out(lambda pair: pair[0].close(), joined, True)
        for index, target in enumerate(targets):
            cell = found[index]
            if parallel is True:
                cell.server = None
            cells.append(cell)
            if cell.status == "ok" and cell.counts is not None:
                log(f"  idle N={n:<4} {cell.label:26} {cell.per_second(cell.counts.ops):8.1f} calls/s "
                    f"{cell.per_second(cell.counts.bytes_moved):12,.0f} B/s")
            else:
                log(f"  idle N={n:<4} {cell.label:26} {cell.status}")
    return cells
