"""4. Re-rendezvous: N agents (``min_nodes = N-1``, ``max_nodes = N``) hold a
round; then one of them falls silent as a killed process would — its
heartbeats stop, its store connections close, it never rejoins — and the
N-1 others call ``next_rendezvous()`` at once. Timed: from the silencing
until every survivor holds the new round (ranks 0..N-2).

Every target holds its first round on its own (a join is CPU-bound); then
the deaths are staggered by ``stagger`` seconds from one target to the next:
most of a re-rendezvous is waiting for the heartbeat timeout, and the
staggering keeps the short CPU-bound rejoins from overlapping.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

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


def first_round(target: Target, n: int, live: Liveness, timeout: float,
                tcp_pool: Any = None) -> tuple[AgentGroup, RerdzvCell | None]:
    """Create ``n`` agents and hold the first round; a cell only if that failed."""
    settings = settings_for(timeout, live.keep_alive_interval, live.last_call_timeout, live.keep_alive_max_attempt)
    group = AgentGroup(target, n - 1, n, settings, tcp_pool=tcp_pool)
    try:
        group.add_agents(n)
    except NotAvailable:
        return group, RerdzvCell(target.label, n, "not available")
    first = timed_join(group.handlers, timeout, group.counters.snapshot)
    return group, None if first.ok else RerdzvCell(target.label, n, f"first round: {first.status}")


def after_death(target: Target, group: AgentGroup, timeout: float) -> RerdzvCell:
    """Silence the last agent; time the survivors' new round."""
    n = len(group.handlers)
    if not group.stop_agent(n - 1):
        return RerdzvCell(target.label, n, "not available (cannot silence an agent)")
    second = timed_join(group.handlers[: n - 1], timeout, group.counters.snapshot)
    if not second.ok:
        return RerdzvCell(target.label, n, second.status, counts=second.counts)
    return RerdzvCell(target.label, n, "ok", second.seconds, second.counts)


def run(targets: Sequence[Target], ns: Sequence[int], live: Liveness, timeout: float,
        log: Callable[[str], None] = print, parallel: bool = False, tcp_pool: Any = None,
        stagger: float = 5.0) -> list[RerdzvCell]:
    """Every target at every N (``parallel=True``, ``--quick``: first rounds
    concurrently too, and no staggering)."""
    cells: list[RerdzvCell] = []
    for n in ns:
        held = fan_out(lambda t: first_round(t, n, live, timeout, tcp_pool), targets, parallel)
        ready = [(i, t, g) for i, (t, (g, failed)) in enumerate(zip(targets, held)) if failed is None]
        delay = 0.0 if parallel else stagger

        def one(item: tuple[int, Target, AgentGroup]) -> RerdzvCell:
            index, target, group = item
            time.sleep(delay * [i for i, _, _ in ready].index(index))
            return after_death(target, group, timeout)

        try:
            measured = dict(zip([i for i, _, _ in ready], fan_out(one, ready, True)))
        finally:
            fan_out(lambda pair: pair[0].close(), held, True)
        for index, (target, (_, failed)) in enumerate(zip(targets, held)):
            cell = failed or measured[index]
            cells.append(cell)
            shown = f"{cell.seconds:6.2f} s" if cell.status == "ok" else cell.status
            log(f"  re-rendezvous N={n:<4} {cell.label:26} {shown}")
    return cells
