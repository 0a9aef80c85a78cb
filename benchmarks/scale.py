"""2. Rendezvous at scale: N agents, ``min_nodes = max_nodes = N``.

For every N the targets run one after the other (side by side in time);
the clock runs from the release of all agents until every
``next_rendezvous()`` has returned with ranks 0..N-1. A target's sweep stops
at its first timeout or error (larger N would only time out again), and
rdzv's ``protocol=torch`` targets stop where torch's c10d timed out: they
run the same handler.
Counters come from the same instrument on both sides (see
:mod:`benchmarks.instruments`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from benchmarks.agents import AgentGroup, NotAvailable, Target, new_run_id, settings_for
from benchmarks.counters import Snapshot
from benchmarks.join import JoinOutcome, fan_out, timed_join


@dataclass
class ScaleCell:
    """One target at one N: every repetition's time and the median run's counters."""

    label: str
    mode: str
    n: int
    status: str = "ok"  # ok | timeout | error: ... | not available | skipped
    seconds: list[float] = field(default_factory=list)
    #: Repetitions that timed out while most completed (they count as +inf in the median).
    timeouts: int = 0
    counts: Snapshot | None = None
    timeout: float = 0.0
    #: Requests the store server handled during the median run (Redis/etcd only).
    server_requests: float | None = None

    @property
    def ok(self) -> bool:
        """Whether most repetitions completed (so the median is a time)."""
        return self.status == "ok" and bool(self.seconds)

    @property
    def median(self) -> float:
        """Median wall time of the repetitions, a timed-out one as +inf (NaN if none completed)."""
        if not self.seconds:
            return float("nan")
        return statistics.median(self.seconds + [float("inf")] * self.timeouts)


def run_threads(target: Target, n: int, timeout: float, tcp_pool: Any = None,
                server: Callable[[], Any] | None = None) -> JoinOutcome:
    """One rendezvous of ``n`` handler threads in this process."""
    group = AgentGroup(target, n, n, settings_for(timeout), tcp_pool=tcp_pool)
    try:
        group.add_agents(n)
        return timed_join(group.handlers, timeout, group.counters.snapshot, server=server)
    finally:
        group.close()


def sweep(targets: Sequence[Target], ns: Sequence[int], mode: str, repetitions: Callable[[int], int],
          timeout: Callable[[int], float], pool: Any = None, log: Callable[[str], None] = print,
          parallel: bool = False, tcp_pool: Any = None,
          server_stats: Callable[[str], Any] | None = None) -> list[ScaleCell]:
    """Every target at every N (``mode`` is ``threads`` or ``processes``);
    ``server_stats(kind)`` reads a store server's own counters (not when
    ``parallel``: targets sharing a server would mix)."""
    cells: list[ScaleCell] = []
    stopped: dict[str, str] = {}

    def measure(target: Target, n: int) -> ScaleCell:
        cell = ScaleCell(target.label, mode, n, timeout=timeout(n))
        if target.label in stopped:
            cell.status = stopped[target.label]
            return cell
        outcomes: list[JoinOutcome] = []
        server = None
        if server_stats is not None and not parallel and target.server:
            server = lambda: server_stats(target.kind)  # noqa: E731
        for _ in range(repetitions(n)):
            try:
                if mode == "threads":
                    outcome = run_threads(target, n, timeout(n), tcp_pool, server)
                else:
                    outcome = pool.run_join(target, n, settings_for(timeout(n)), timeout(n), new_run_id(), server)
            except NotAvailable:
                cell.status = stopped[target.label] = "not available"
                break
            outcomes.append(outcome)
            if outcome.status == "timeout" and 2 * (cell.timeouts + 1) < repetitions(n):
                cell.timeouts += 1  # a minority so far: the median decides
                continue
            if not outcome.ok:
                cell.status = outcome.status
                cell.counts = outcome.counts
                why = "timeout" if outcome.status == "timeout" else "error"
                stopped[target.label] = f"skipped (after {why} at N={n})"
                break
        good = [o for o in outcomes if o.ok]
        if cell.status == "ok" and cell.timeouts and 2 * cell.timeouts >= len(outcomes):
            cell.status = "timeout"  # as many timed out as completed
            stopped[target.label] = f"skipped (after timeout at N={n})"
        if cell.status == "ok" and good:
            cell.seconds = [o.seconds for o in good]
            middle = sorted(good, key=lambda o: o.seconds)[len(good) // 2]
            cell.counts = middle.counts
            cell.server_requests = middle.server.requests if middle.server is not None else None
        if target.baseline and cell.status == "timeout" and not parallel:
            # rdzv's protocol=torch runs torch's own handler: where torch's c10d
            # timed out, it would only wait out the same timeout again.
            for other in targets:
                if other.protocol == "torch" and not other.baseline:
                    stopped.setdefault(other.label, f"skipped (torch's handler timed out at N={n})")
        log(_line(cell))
        return cell

    for n in ns:
        cells += fan_out(lambda t: measure(t, n), targets, parallel and mode == "threads")
    return cells


def _line(cell: ScaleCell) -> str:
    if cell.ok and cell.counts is not None:
        c = cell.counts
        return (f"  scale[{cell.mode}] N={cell.n:<5} {cell.label:26} {cell.median:7.2f} s  "
                f"CAS {c.cas:>7} lost {c.cas_lost:>7}  bytes {c.bytes_moved:>11,}")
    return f"  scale[{cell.mode}] N={cell.n:<5} {cell.label:26} {cell.status}"
