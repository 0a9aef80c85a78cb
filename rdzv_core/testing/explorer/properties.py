"""What the explorer checks: ranks in every state, and where the run ends up
(as a mixin of :class:`~rdzv_core.testing.explorer.model.Model`).
Transition-level properties (two seals, a live member recorded dead, a
round sealed after the job ended) are flagged where the steps happen."""

from __future__ import annotations

from typing import Optional

from rdzv_core.testing.explorer.state import DEAD, LIVE, Member, State, is_running


class Properties:
    """Safety of a state and liveness of a final component."""


    def unsafe(self, s: State) -> Optional[str]:
        """A safety property broken in ``s`` (ranks 0..W-1 distinct and agreed), if any."""
        rounds: dict[int, list[Member]] = {}
        for n in s.nodes:
            if n.member is not None and n.status in (LIVE, DEAD):
                rounds.setdefault(n.member.round, []).append(n.member)
        for r, members in rounds.items():
            if len({m.world for m in members}) > 1:
                return "members disagree on the world size"
            if len({m.rank for m in members}) < len(members) or any(m.rank >= m.world for m in members):
                return "two members with one rank"
        return None

    def stuck(self, s: State) -> Optional[tuple[str, str]]:
        """Why ``s``, in a set of states the run stays in forever, is not where
        the run must end up: ``(kind, details)``, or ``None`` when it is.
        Every live node takes part in the latest round, and that round has
        every member it admitted running, unless fewer than ``min_nodes``
        nodes are alive (no quorum: join_timeout ends them); a node may wait
        only as a spare of a full round. After the job ended every waiter
        exits."""
        c = self.c
        live = [(i, n) for i, n in enumerate(s.nodes) if n.status == LIVE]
        if s.ended:
            # A member still running an older, broken round is left to its
            # workers' failure (outside the model); a waiter must exit.
            waiting = [f"n{i}" for i, n in live if n.join is not None]
            return ("stuck: a waiter never exits after the job ended", ", ".join(waiting)) if waiting else None
        if len(live) < c.min_nodes:
            return None
        running = [(i, n) for i, n in live if is_running(n)]
        if not running:
            return "stuck: no round runs", ", ".join(f"n{i} waits in round {n.join.round}" for i, n in live if n.join)
        latest = max(n.member.round for _, n in running)
        behind = [f"n{i} runs round {n.member.round}" for i, n in running if n.member.round != latest]
        if behind:
            return "stuck: members left behind in an older round", f"{', '.join(behind)}; latest {latest}"
        world = running[0][1].member.world
        if len(running) != world:
            missing = [f"n{i}" for i, n in enumerate(s.nodes) if n.member is not None and n.member.round == latest
                       and not is_running(n)]
            return ("stuck: a round runs without some of its members, who never come back",
                    f"round {latest} runs with {len(running)} of its {world} members "
                    f"(not running: {', '.join(missing) or 'a phantom'}); they never restart")
        waiting = [(i, n) for i, n in live if not is_running(n)]
        if waiting and world < c.max_nodes:
            who = ", ".join(f"n{i}" + (f" waits in round {n.join.round}" if n.join else "") for i, n in waiting)
            return ("stuck: a node left waiting while there is room",
                    f"{who}, while round {latest} runs with {world} < max_nodes={c.max_nodes}")
        return None
