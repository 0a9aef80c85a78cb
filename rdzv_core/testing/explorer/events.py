"""Events of the explorer's budget (kills, leaves, re-joins, late joiners,
store stalls and wipes, the job's end), as a mixin of
:class:`~rdzv_core.testing.explorer.model.Model`."""

from __future__ import annotations

import itertools

from rdzv_core.testing.explorer.state import DEAD, IDLE, LIVE, Join, State, Step, replace_at, is_running


class Events:
    """The event transitions (see the module docstring of ``model``)."""


    def _events(self, s: State) -> list[Step]:
        c, out = self.c, []
        live = [i for i, n in enumerate(s.nodes) if n.status == LIVE]
        if self._has(s, "kill"):
            for i in live:
                n = s.nodes[i]
                out.append(Step(f"EVENT n{i} is killed", self._stop(self._spend(s, "kill"), i, n._replace(
                    status=DEAD, join=None, ending=0)), event=True))
        for i in live:
            n = s.nodes[i]
            if not is_running(n):
                continue
            if self._has(s, "leave"):
                step = self._own_death(self._spend(s, "leave"), i, n, f"EVENT n{i} leave()")
                out.append(step._replace(event=True))
            if self._has(s, "rejoin"):
                out.append(Step(f"EVENT n{i}'s workers fail: its agent re-rendezvouses (its heartbeat beats on)",
                                self._spend(s, "rejoin")._replace(
                                    nodes=replace_at(s.nodes, i, n._replace(join=Join("open", n.member)))), event=True))
        if self._has(s, "late"):
            for i, n in enumerate(s.nodes):
                if n.status == IDLE:
                    out.append(Step(f"EVENT n{i} starts (late joiner)", self._spend(s, "late")._replace(
                        nodes=replace_at(s.nodes, i, n._replace(status=LIVE, join=Join("open", None)))), event=True))
                    break  # idle nodes are interchangeable
        if self._has(s, "stall"):
            out.extend(self._stalls(self._spend(s, "stall")))
        if self._has(s, "wipe") and not (c.wipe_while_running and any(
                s.nodes[i].join is not None or s.nodes[i].ending for i in live)):
            t = self._spend(s, "wipe")
            t = t._replace(hint=0, closed=False, rounds=(self.empty,) * len(s.rounds),
                           nodes=self._forget(t.nodes, 0, None))
            out.append(Step("EVENT the store loses every key", t, event=True))
        if self._has(s, "end") and not s.ended:
            out.extend(self._job_end(self._spend(s, "end")))
        return out

    def _stalls(self, s: State) -> list[Step]:
        """The store stalls for S ticks. Frozen: every operation blocks, alive
        keys expire meanwhile, and when it answers again every heartbeat's
        blocked tick completes, in any order (which becomes the new phase
        order). Down: operations fail; heartbeats keep ticking, their reads
        fail (the watch's stretch breaks)."""
        out = []
        for ticks in self.c.stall_ticks:
            t = self._shift(s, ticks)
            for kind in self.c.stall_kinds:
                nodes = list(t.nodes)
                for i in t.phases:
                    hb = nodes[i].hb
                    if kind == "down":
                        failing = ticks if hb.due else ticks - 1
                        if failing >= 1 and (hb.ticked or failing >= 2):
                            hb = hb._replace(watch=hb.watch.failed())
                        hb = hb._replace(ticked=hb.ticked or failing >= 1)
                    nodes[i] = nodes[i]._replace(hb=hb._replace(due=True))
                u = t._replace(nodes=tuple(nodes))
                label = f"EVENT the store is {'frozen' if kind == 'freeze' else 'down'} for {ticks} ticks"
                if kind == "down" or len(t.phases) < 2:
                    out.append(Step(label, u, event=True))
                    continue
                for order in itertools.permutations(t.phases):
                    out.append(Step(f"{label}; blocked ticks complete in order {['n%d' % p for p in order]}",
                                    u._replace(phases=order), event=True))
        return out

    def _job_end(self, s: State) -> list[Step]:
        """The job ends: every member of a round whose members all run finishes
        (each agent then calls ``shutdown()``)."""
        out = []
        rounds = {n.member.round for n in s.nodes if is_running(n)}
        for r in sorted(rounds):
            members = [i for i, n in enumerate(s.nodes) if is_running(n) and n.member.round == r]
            if len(members) != s.nodes[members[0]].member.world:
                continue
            nodes = tuple(n._replace(ending=1) if i in members else n for i, n in enumerate(s.nodes))
            out.append(Step(f"EVENT the job ends: members {['n%d' % i for i in members]} of round {r} finish",
                            s._replace(nodes=nodes, ended=True), event=True))
        return out
