"""4. Re-rendezvous: N agents (``min_nodes = N-1``, ``max_nodes = N``) hold a
round; then one of them falls silent as a killed process would — its
heartbeats stop, its store connections close, it never rejoins — and the
N-1 others call ``next_rendezvous()`` at once. Timed: from the silencing
until every survivor holds the new round (ranks 0..N-2). torch's handler
only notices the dead node after ``keep_alive_interval x
keep_alive_max_attempt`` without a heartbeat, then waits
``last_call_timeout``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from benchmarks.agents import AgentGroup, NotAvailable, Target, settings_for
from benchmarks.counters import Snapshot
from benchmarks.join import fan_out, timed_join


@dataclass
class RerdzvCell:
    """One target's re-rendezvous at one N."""

    label: str
    n: int
    status: str
    seconds: float = float("nan")
    counts: Snapshot | None = None


@dataclass(frozen=True)
class Liveness:
    """The heartbeat settings of the run."""

    keep_alive_interval: int = 5
    keep_alive_max_attempt: int = 3
    last_call_timeout: int = 1

    @property
    def ttl(self) -> int:
        """Seconds without a heartbeat before a node counts as dead."""
        return self.keep_alive_interval * self.keep_alive_max_attempt


def measure(target: Target, n: int, live: Liveness, timeout: float) -> RerdzvCell:
    """One re-rendezvous after the death of one of ``n`` agents."""
    settings = settings_for(timeout, live.keep_alive_interval, live.last_call_timeout, live.keep_alive_max_attempt)
    group = AgentGroup(target, n - 1, n, settings)
    try:
        try:
            group.add_agents(n)
        except NotAvailable:
            return RerdzvCell(target.label, n, "not available")
        first = timed_join(group.handlers, timeout, group.counters.snapshot)
        if not first.ok:
            return RerdzvCell(target.label, n, f"first round: {first.status}")
        if not group.stop_agent(n - 1):
            return RerdzvCell(target.label, n, "not available (cannot silence an agent)")
        survivors = group.handlers[: n - 1]
        second = timed_join(survivors, timeout, group.counters.snapshot)
        if not second.ok:
            return RerdzvCell(target.label, n, second.status, counts=second.counts)
        return RerdzvCell(target.label, n, "ok", second.seconds, second.counts)
    finally:
        group.close()


def run(targets: Sequence[Target], ns: Sequence[int], live: Liveness, timeout: float,
        log: Callable[[str], None] = print, parallel: bool = False) -> list[RerdzvCell]:
    """Every target at every N."""

    def one(target: Target, n: int) -> RerdzvCell:
        cell = measure(target, n, live, timeout)
        shown = f"{cell.seconds:6.2f} s" if cell.status == "ok" else cell.status
        log(f"  re-rendezvous N={n:<4} {cell.label:26} {shown}")
        return cell

    cells: list[RerdzvCell] = []
    for n in ns:
        cells += fan_out(lambda t: one(t, n), targets, parallel)
    return cells
