"""Exhaustive checks of the scalable protocol for small worlds (issue 12, item 2).

The explorer (``rdzv_core.testing.explorer``) runs the protocol's real
decision functions over every interleaving of each configuration below and
checks, at every step: at most one seal per round, ranks 0..W-1 distinct and
agreed, no live member recorded dead, no node running a round sealed after
the job ended; and where the run ends up once events stop: every live node
in the latest round, no live node left waiting while there is room, every
death and every re-join followed by a new round for every live member.

The OLD rules (before issue 12's fixes, kept as a fixture) must be caught in
four configurations, each of which the NEW rules pass. Run with ``-s`` to
see the state counts and bounds.
"""

from __future__ import annotations

import pytest

from rdzv_core.testing.explorer import NEW, OLD, Config, Result, explore

pytestmark = pytest.mark.slow

#: Defaults of every configuration: TTL 3 ticks (interval = tick = 1),
#: the last call over at any time from 2 ticks after the quorum, rounds 0..3.
BASE = dict(nodes=3, min_nodes=2, max_nodes=3, last_call=2)

#: Configurations the NEW rules must pass, each exhaustively.
PASSING = [
    Config("kill", **BASE, kill=1),
    Config("graceful leave", **BASE, leave=1),
    Config("re-join", **BASE, rejoin=1),
    Config("re-join, last call after 1 tick", **{**BASE, "last_call": 1}, rejoin=1),
    Config("late joiner", **{**BASE, "max_nodes": 4}, late=1),
    Config("lost reply", **BASE, lost=1),
    Config("store stall", **BASE, stall=1, stall_ticks=(1, 2, 3, 4), stall_kinds=("freeze", "down")),
    Config("kill + store stall", **BASE, kill=1, stall=1, stall_ticks=(2, 4), stall_kinds=("freeze", "down")),
    Config("leave + store stall", **BASE, leave=1, stall=1, stall_ticks=(2, 4), stall_kinds=("freeze", "down")),
    Config("spare, late joiner, kill, job end", nodes=3, late=1, min_nodes=1, max_nodes=2, last_call=2,
           kill=1, end=1),
    Config("store loses its keys while the round runs, re-join", **BASE, wipe=1, wipe_while_running=True, rejoin=1),
    Config("store loses its keys at any point", **BASE, wipe=1),
    Config("4 nodes, kill", nodes=4, min_nodes=2, max_nodes=4, last_call=2, kill=1),
    Config("4 nodes, spare, job end", nodes=4, min_nodes=2, max_nodes=3, last_call=2, end=1),
]

#: The four defects the fixes removed: (configuration, kind the OLD rules must show).
DEFECTS = [
    pytest.param(Config("store stall longer than the TTL", **BASE, stall=1, stall_ticks=(1, 2, 3, 4),
                        stall_kinds=("freeze", "down")),
                 "live member recorded dead", id="stall-counted-as-deaths"),
    pytest.param(Config("a member re-joins while the others run", **BASE, rejoin=1),
                 "stuck: a round runs without some of its members, who never come back", id="invisible-rejoiner"),
    pytest.param(Config("job end with a spare waiting", nodes=3, min_nodes=1, max_nodes=2, last_call=2, end=1),
                 "a node runs a round sealed after the job ended", id="spare-reruns-finished-job"),
    pytest.param(Config("store loses its keys during a join", **BASE, wipe=1),
                 "two members with one rank", id="ticket-handed-out-twice"),
]


def report(result: Result) -> str:
    """The summary line, and the shortest trace of each violation."""
    lines = [result.summary()]
    for kind in result.violations:
        lines += [f"{kind}:", result.trace(kind)]
    text = "\n".join(lines)
    print(text)
    return text


@pytest.mark.parametrize("config", PASSING, ids=[c.name for c in PASSING])
def test_new_rules_pass(config: Config) -> None:
    result = explore(config, NEW)
    text = report(result)
    assert result.complete, text
    assert not result.violations, text
    assert result.bottoms > 0, text


@pytest.mark.parametrize("config, kind", DEFECTS)
def test_old_rules_are_caught(config: Config, kind: str) -> None:
    old = explore(config, OLD)
    old_text = report(old)
    assert kind in old.violations, old_text
    new = explore(config, NEW)
    new_text = report(new)
    assert new.complete and not new.violations, new_text


def test_newcomer_after_the_store_lost_its_keys() -> None:
    """Found by the explorer: after the store lost its keys the round hint was
    gone, so a newcomer opened round 0, which the running members never look
    at, and waited there forever. Members now write the hint back, and a
    waiter whose round the hint has passed opens again."""
    config = Config("store loses its keys while the round runs, then a late joiner", **{**BASE, "max_nodes": 4},
                    late=1, wipe=1, wipe_while_running=True)
    result = explore(config, NEW)
    assert not result.violations, report(result)


def test_new_rules_are_the_protocols_own_decisions() -> None:
    from rdzv_core.protocol import decisions

    assert NEW.nodes_waiting is decisions.nodes_waiting
    assert NEW.stall_limit is decisions.stall_limit
    assert NEW.watch_begin(0) == decisions.Watch.begin(0)
    assert (NEW.sealable, NEW.admitted, NEW.is_spare) == (decisions.sealable, decisions.admitted, decisions.is_spare)
