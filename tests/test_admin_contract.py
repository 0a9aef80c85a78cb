"""The adapter contract's administration defaults and the pure parts of ``rdzv status``."""

from __future__ import annotations

import pytest

from rdzv_core.admin.explain import round_wait_sentence, silent_member_sentence
from rdzv_core.testing.memory import MemorySpace, MemoryStateStore


def test_the_default_purge_deletes_every_listed_key_of_the_run_only() -> None:
    space = MemorySpace()
    mine, theirs = MemoryStateStore(space, "a"), MemoryStateStore(space, "ab")
    for key in ("state", "p/round", "kv/x"):
        mine.write(key, b"1")
    theirs.write("state", b"2")
    assert mine.purge() == 3
    assert mine.list_keys() == [] and theirs.list_keys() == ["state"]


def test_run_ids_is_optional() -> None:
    with pytest.raises(NotImplementedError, match="cannot list the runs"):
        MemoryStateStore(MemorySpace(), "a").run_ids()


@pytest.mark.parametrize(("args", "sentence"), [
    ((0, 6, 8, 8, None, 0, 0, None, 540.0), "6 of min 8 nodes joined round 0; waiting for 2 more; join timeout in 9 min"),
    ((0, 3, 2, 4, None, 0, 0, 12.2, None), "3 of max 4 nodes joined round 0 (min 2 reached); last call ends in 12 s"),
    ((4, 0, 2, 4, 3, 0, 0), "round 3 is complete: 3 nodes running, nobody waits"),
    ((4, 1, 2, 3, 3, 0, 0), "1 node waits as spare: round 3 is full (max 3); a spare joins when a member leaves or dies"),
    ((4, 2, 2, 4, 3, 1, 1), "1 of 3 members of round 3 are back in round 4 (1 recorded dead); waiting for 1 more "
                            "to come back or to be recorded dead"),
])
def test_why_a_round_is_not_complete(args: tuple, sentence: str) -> None:
    assert round_wait_sentence(*args) == sentence


def test_a_late_member() -> None:
    assert silent_member_sentence(3, "host-b", 811, 14.2, 15) == "member 3 (host-b, pid 811) has not beaten for 14 s of a 15 s TTL"
