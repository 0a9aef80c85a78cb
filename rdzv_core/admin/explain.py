"""One sentence on why a round is not complete yet, as pure functions.

Both ``rdzv status`` (from what it reads in the store) and the scalable
handler's progress log (from what a waiting node observed) say it with
:func:`round_wait_sentence`, so an operator sees the same words in both.
Nothing here reads a clock or a store.
"""

from __future__ import annotations


def duration(seconds: float) -> str:
    """A short human duration: ``12 s``, ``9 min``, ``2 h``."""
    seconds = max(seconds, 0.0)
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def _nodes(count: int) -> str:
    return f"{count} node{'' if count == 1 else 's'}"


def _fresh_round(round_no: int, taken: int, min_nodes: int | None, max_nodes: int | None,
                 last_call_left: float | None, join_left: float | None) -> str:
    """A round with no running round before it (round 0, or after one that never sealed)."""
    if min_nodes is None:
        return f"{_nodes(taken)} joined round {round_no}; min_nodes is unknown (pass --nnodes as the launcher had it)"
    if taken < min_nodes:
        text = f"{taken} of min {min_nodes} nodes joined round {round_no}; waiting for {min_nodes - taken} more"
        return text + (f"; join timeout in {duration(join_left)}" if join_left is not None else "")
    if max_nodes is not None and taken >= max_nodes:
        return f"round {round_no} is full ({taken} of max {max_nodes} nodes); it seals now"
    most = f" of max {max_nodes}" if max_nodes is not None else ""
    if last_call_left is not None and last_call_left > 0:
        return f"{taken}{most} nodes joined round {round_no} (min {min_nodes} reached); last call ends in {duration(last_call_left)}"
    return f"{taken}{most} nodes joined round {round_no} (min {min_nodes} reached); last call is over, it seals at the next check"


def round_wait_sentence(round_no: int, taken: int, min_nodes: int | None, max_nodes: int | None,
                        previous_world: int | None, back: int, gone: int,
                        last_call_left: float | None = None, join_left: float | None = None) -> str:
    """Why round ``round_no`` is not sealed yet, given ``taken`` tickets (``back``
    of them members of the round before, which had ``previous_world`` members,
    ``gone`` of them recorded dead), the seconds left of the last call and of the
    join timeout where known. ``previous_world`` is ``None`` when no round runs."""
    if previous_world is None:
        return _fresh_round(round_no, taken, min_nodes, max_nodes, last_call_left, join_left)
    running = round_no - 1
    if back + gone == 0:
        if taken == 0:
            return f"round {running} is complete: {_nodes(previous_world)} running, nobody waits"
        if max_nodes is not None and previous_world >= max_nodes:
            return (f"{_nodes(taken)} wait{'s' if taken == 1 else ''} as spare{'' if taken == 1 else 's'}: round "
                    f"{running} is full (max {max_nodes}); a spare joins when a member leaves or dies")
        return (f"{_nodes(taken)} wait{'s' if taken == 1 else ''} to join round {round_no}; the "
                f"{previous_world} members of round {running} restart to admit them at their next check")
    if back + gone >= previous_world:
        if min_nodes is None or taken >= min_nodes:
            return f"every live member of round {running} is back in round {round_no}; it seals now"
        return (f"every live member of round {running} is back, but only {taken} of min {min_nodes} nodes joined "
                f"round {round_no}; waiting for {min_nodes - taken} more")
    missing = previous_world - back - gone
    text = f"{back} of {previous_world} members of round {running} are back in round {round_no}"
    text += f" ({gone} recorded dead)" if gone else ""
    text += f"; waiting for {missing} more to come back or to be recorded dead"
    if min_nodes is not None and taken >= min_nodes and last_call_left is not None:
        text += f"; last call ends in {duration(last_call_left)}" if last_call_left > 0 else "; last call is over"
    return text


def silent_member_sentence(rank: int, host: str, pid: int | None, age: float | None, ttl: float | None) -> str:
    """A member whose heartbeat is late (``age`` seconds old, ``None``: never seen)."""
    who = f"member {rank} ({host}{f', pid {pid}' if pid is not None else ''})"
    if age is None:
        return f"{who} has not beaten yet"
    of_ttl = f" of a {ttl:g} s TTL" if ttl else ""
    past = " and counts as dead at its watcher's next check" if ttl and age >= ttl else ""
    return f"{who} has not beaten for {age:.0f} s{of_ttl}{past}"


def is_late(age: float | None, interval: float | None) -> bool:
    """Whether a beat ``age`` seconds old missed at least one beat of ``interval`` s
    (with a second of slack for scheduling and clocks)."""
    return age is not None and interval is not None and age > interval + 1.0
