"""Exhaustive breadth-first search of a :class:`~.model.Model`.

Safety is checked on every transition (at most one seal per round, no live
member recorded dead, no node running a round sealed after the job ended)
and every state (ranks distinct and agreed). Liveness is checked on the
graph without events: a *bottom* strongly connected component of it is
where the run stays forever once no more events happen (every lazy step
that could lead out of it, such as a seal on last call, would leave it);
every state of every bottom component must pass
:meth:`~.model.Model.stuck`. Components with a state cut at the bound are
not judged. Traces are shortest paths (breadth-first).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Optional

from rdzv_core.testing.explorer.model import Config, Model, State
from rdzv_core.testing.explorer.rules import Rules


@dataclass
class Result:
    """What one exploration found."""

    config: Config
    rules: str
    states: int = 0
    transitions: int = 0
    truncated: int = 0  # states with a transition cut at the bound
    bottoms: int = 0  # bottom components judged
    seconds: float = 0.0
    complete: bool = True  # False: stopped at max_states
    violations: dict[str, list[str]] = field(default_factory=dict)  # kind -> shortest trace

    def summary(self) -> str:
        """One line: the bound, the counts and what was found."""
        found = "; ".join(self.violations) or "no violation"
        return (f"[{self.config.name} / {self.rules} rules] {self.states} states, {self.transitions} transitions, "
                f"{self.bottoms} final components, {self.truncated} states at the round bound, "
                f"{self.seconds:.1f} s{'' if self.complete else ' (INCOMPLETE)'}: {found}. "
                f"Bound: {self.config.bound()}")

    def trace(self, kind: str) -> str:
        """The shortest trace found for violation ``kind``, one step a line."""
        return "\n".join(f"  {k:3d}. {line}" for k, line in enumerate(self.violations[kind], 1))


def explore(config: Config, rules: Rules, max_states: int = 2_000_000, stop_at: Optional[str] = None) -> Result:
    """Explore every interleaving of ``config`` under ``rules``. With
    ``stop_at``, stop as soon as a safety violation of that kind is found
    (the liveness check is then skipped)."""
    started = time.monotonic()
    model = Model(config, rules)
    result = Result(config, rules.name)
    init, _moved = model.canonical(model.initial())
    ids: dict[State, int] = {init: 0}
    states: list[State] = [init]
    parent: list[tuple[int, str, Optional[tuple[int, ...]]]] = [(-1, "start", None)]
    edges: list[list[int]] = []
    cut: list[bool] = []

    def path(k: int, extra: Optional[str]) -> list[str]:
        steps = []
        while k > 0:
            k, label, moved = parent[k]
            steps.append((label, moved))
        steps.reverse()
        if extra:
            steps.append((extra, None))
        lines, t = [], 0
        names = list(range(config.nodes))  # node index in the current state -> its name in the trace
        for label, moved in steps:
            lines.append(f"t={t} " + re.sub(r"\bn(\d)", lambda m: f"n{names[int(m.group(1))]}", label))
            if label == "tick":
                t += 1
            elif label.startswith("EVENT the store is") and " for " in label:
                t += int(label.split(" for ")[1].split()[0])
            if moved is not None:
                renamed = list(names)
                for old, new in enumerate(moved):
                    renamed[new] = names[old]
                names = renamed
        return lines

    def found(kind: str, k: int, extra: Optional[str] = None) -> None:
        if kind not in result.violations:
            result.violations[kind] = path(k, extra)

    k = 0
    while k < len(states):
        s = states[k]
        out: list[int] = []
        truncated = False
        bad = model.unsafe(s)
        if bad:
            found(bad, k)
            truncated = True
        else:
            for step in model.successors(s):
                result.transitions += 1
                if step.target is None:
                    truncated = True
                    continue
                if step.violation:
                    found(step.violation, k, f"VIOLATION: {step.label}")
                    truncated = True
                    continue
                target, moved = model.canonical(step.target)
                j = ids.get(target)
                if j is None:
                    if len(states) >= max_states:
                        result.complete = False
                        truncated = True
                        continue
                    j = ids[target] = len(states)
                    states.append(target)
                    parent.append((k, step.label, moved))
                if not step.event:
                    out.append(j)
        edges.append(out)
        cut.append(truncated)
        result.truncated += truncated
        k += 1
        if stop_at is not None and stop_at in result.violations:
            result.complete = False
            result.states = len(states)
            result.seconds = time.monotonic() - started
            return result
    result.states = len(states)
    for component in bottom_components(edges):
        if any(cut[v] for v in component):
            continue
        result.bottoms += 1
        for v in component:
            why = model.stuck(states[v])
            if why:
                found(why[0], v, f"STAYS THERE FOREVER: {why[1]}")
                break
    result.seconds = time.monotonic() - started
    return result


def bottom_components(edges: list[list[int]]) -> list[list[int]]:
    """The strongly connected components with no edge leaving them
    (iterative Tarjan)."""
    n = len(edges)
    index = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    comp = [-1] * n
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] != -1:
            continue
        work = [(root, 0)]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        while work:
            v, i = work[-1]
            if i < len(edges[v]):
                work[-1] = (v, i + 1)
                w = edges[v][i]
                if index[w] == -1:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = True
                    work.append((w, 0))
                elif on_stack[w]:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
            if low[v] == index[v]:
                members = []
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    comp[w] = len(components)
                    members.append(w)
                    if w == v:
                        break
                components.append(members)
    bottoms = []
    for c, members in enumerate(components):
        if all(comp[w] == c for v in members for w in edges[v]):
            bottoms.append(members)
    return bottoms
