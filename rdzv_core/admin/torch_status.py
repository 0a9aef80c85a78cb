"""``rdzv status`` of a run on torch's protocol (one pickled state blob)."""

from __future__ import annotations

from datetime import datetime, timezone

from rdzv_core.admin.explain import duration, is_late, silent_member_sentence
from rdzv_core.admin.report import NodeLine, RunStatus
from rdzv_core.admin.scalable_state import Rules
from rdzv_core.admin.torch_state import TorchNode, TorchState


def _line(node: TorchNode, state: str, now: datetime, state_of: TorchState, rank: int | None = None) -> NodeLine:
    beat = state_of.last_heartbeats.get(node)
    age = None if beat is None else max((now - beat).total_seconds(), 0.0)
    return NodeLine(node=node.node_id, host=node.addr, pid=node.pid, state=state, rank=rank, beat_age=age)


def torch_why(state: TorchState, members: list[NodeLine], rules: Rules, now: datetime) -> str:
    """Why torch's round is not complete (or what it waits for), in one sentence."""
    if state.closed:
        return "the run is closed: its agents end (a spare exits gracefully) and no round starts again"
    joined = len(state.participants)
    if not state.complete:
        if state.deadline is not None:
            left = (state.deadline - now).total_seconds()
            most = f" of max {rules.max_nodes}" if rules.max_nodes is not None else ""
            if left > 0:
                return f"{joined}{most} nodes joined round {state.round} (min reached); last call ends in {duration(left)}"
            return f"{joined}{most} nodes joined round {state.round} (min reached); last call is over, it completes at the next sync"
        if rules.min_nodes is None:
            return (f"{joined} node{'' if joined == 1 else 's'} joined round {state.round}, fewer than min_nodes "
                    "(pass --nnodes as the launcher had it to see how many are missing)")
        return (f"{joined} of min {rules.min_nodes} nodes joined round {state.round}; "
                f"waiting for {max(rules.min_nodes - joined, 0)} more")
    late = [m for m in members if m.state in ("late", "silent")]
    if late:
        worst = max(late, key=lambda m: m.beat_age if m.beat_age is not None else float("inf"))
        assert worst.rank is not None
        return silent_member_sentence(worst.rank, worst.host, worst.pid, worst.beat_age, rules.ttl)
    if state.wait_list:
        count = len(state.wait_list)
        return (f"{count} node{'s' if count != 1 else ''} wait{'s' if count == 1 else ''} for round "
                f"{state.round + 1}; the members restart to admit them at their next check")
    spares = f"; {len(state.redundancy_list)} spare(s) wait" if state.redundancy_list else ""
    return f"round {state.round} is complete: {joined} node{'' if joined == 1 else 's'} running{spares}"


def torch_status(state: TorchState, rules: Rules, head: tuple[str, str, str], now: datetime | None = None) -> RunStatus:
    """The :class:`RunStatus` of torch's decoded state."""
    now = now or datetime.now(timezone.utc)
    members = []
    for node, rank in sorted(state.participants.items(), key=lambda item: item[1]):
        line = _line(node, "alive", now, state, rank)
        if line.beat_age is None:
            line.state = "silent"
        elif rules.ttl is not None and line.beat_age >= rules.ttl:
            line.state = "dead"  # torch drops it from the state at the next sync
        elif is_late(line.beat_age, rules.interval):
            line.state = "late"
        members.append(line)
    waiting = [_line(n, "waiting", now, state) for n in state.wait_list]
    waiting += [_line(n, "spare", now, state) for n in state.redundancy_list]
    ages = [(now - at).total_seconds() for at in state.last_heartbeats.values()]
    backend, endpoint, run_id = head
    return RunStatus(backend, endpoint, run_id, "torch", state.round, state.complete and not state.wait_list,
                     state.closed, torch_why(state, members, rules, now), members, waiting,
                     {"min_nodes": rules.min_nodes, "max_nodes": rules.max_nodes,
                      "last_call_timeout": rules.last_call, "heartbeat_ttl": rules.ttl,
                      "keep_alive_interval": rules.interval},
                     max(min(ages), 0.0) if ages else None)
