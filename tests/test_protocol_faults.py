"""The scalable protocol under store outages, re-joins and the end of a job.

Handlers run on the reference in-memory adapter, each through its own
:class:`~rdzv_core.testing.faults.OutageStore`, so a test can freeze the
store (calls block; TTL keys go on expiring, as in a frozen Redis or etcd),
take it down (calls are refused) or empty it (a restart without
persistence). The same faults in real launches on Redis and etcd are in the
plugins' ``test_launch_faults.py``.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any, Callable

import pytest
from torch.distributed.elastic.rendezvous import RendezvousGracefulExitError, RendezvousParameters

from rdzv_core.bridge import BridgeStore
from rdzv_core.codec import FrameCodec
from rdzv_core.guarded import GuardedStore
from rdzv_core.protocol import keys
from rdzv_core.protocol.decisions import Watch, nodes_waiting, seal_gate, stall_limit
from rdzv_core.protocol.handler import HandlerSettings, ScalableRendezvousHandler
from rdzv_core.settings import CoreSettings
from rdzv_core.testing.faults import OutageStore
from rdzv_core.testing.memory import MemorySpace, MemoryStateStore
from rdzv_core.testing.rendezvous import run_in_threads

#: TTL 0.6 s, one watcher read every 0.2 s.
TIMING = {"keep_alive_interval": 0.2, "keep_alive_max_attempt": 3, "last_call_timeout": 0.3, "join_timeout": 20}
TTL = 0.6


class Cluster:
    """Handlers of one run on one in-memory space, each behind an OutageStore."""

    def __init__(self, count: int, min_nodes: int, max_nodes: int, read_timeout: float = 10,
                 **timing: float) -> None:
        self.space = MemorySpace()
        self.run = f"faults-{id(self)}"
        self.outages: list[OutageStore] = []
        self.stores: list[GuardedStore] = []
        self.timing = {**TIMING, **timing}
        self.handlers = [self._handler(min_nodes, max_nodes, read_timeout) for _ in range(count)]

    def _handler(self, min_nodes: int, max_nodes: int, read_timeout: float) -> ScalableRendezvousHandler:
        params = RendezvousParameters("memory", "x", self.run, min_nodes, max_nodes, local_addr="127.0.0.1",
                                      **self.timing)
        outage = OutageStore(MemoryStateStore(self.space, self.run))
        store = GuardedStore(outage, "memory", read_timeout=read_timeout)
        self.outages.append(outage)
        self.stores.append(store)
        return ScalableRendezvousHandler("memory", HandlerSettings.of(CoreSettings.parse(params)), store,
                                         BridgeStore(store, timedelta(seconds=read_timeout)), FrameCodec())

    def each(self, action: Callable[[OutageStore], None]) -> None:
        """Apply ``action`` to every handler's view of the store."""
        for outage in self.outages:
            action(outage)

    def empty(self) -> None:
        """Lose every key, as a store restarted without persistence does."""
        with self.space.lock:
            self.space.data.clear()

    def counter(self, key: str) -> int:
        """A counter of the run, read past the outage switches."""
        found = self.outages[0].inner.read(key)
        return 0 if found is None else int(found.value)

    def stop(self) -> None:
        """Restore the store and stop every heartbeat."""
        self.each(OutageStore.restore)
        for handler in self.handlers:
            handler._stop_heartbeats()  # noqa: SLF001


@pytest.fixture
def clusters() -> Any:
    made: list[Cluster] = []

    def make(count: int, min_nodes: int, max_nodes: int, **kw: Any) -> Cluster:
        made.append(Cluster(count, min_nodes, max_nodes, **kw))
        return made[-1]

    yield make
    for cluster in made:
        cluster.stop()


def until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` for up to ``timeout`` s."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def settle(seconds: float, handlers: list[ScalableRendezvousHandler]) -> list[int]:
    """Watch ``num_nodes_waiting`` of every handler for ``seconds``; every value seen."""
    seen: list[int] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen.extend(h.num_nodes_waiting() for h in handlers)
        time.sleep(0.05)
    return seen


def meet_again(joiner: ScalableRendezvousHandler, others: list[ScalableRendezvousHandler], who: str,
               within: float) -> None:
    """``joiner`` calls ``next_rendezvous`` while ``others`` run their round:
    they must count it as waiting within ``within`` s, re-rendezvous, and all
    meet in one round with ranks 0..W-1."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(joiner.next_rendezvous()), daemon=True)
    thread.start()
    assert until(lambda: all(h.num_nodes_waiting() > 0 for h in others), within), f"{who} went unseen"
    again = run_in_threads(others, lambda h: h.next_rendezvous())
    thread.join(20)
    assert result, f"{who} was not admitted"
    infos = [result[0], *again]
    world = len(others) + 1
    assert sorted(i.rank for i in infos) == list(range(world)) and {i.world_size for i in infos} == {world}


# -- the rules, as pure functions -----------------------------------------------------


def test_a_watch_over_an_unbroken_stretch_finds_a_silent_member_dead() -> None:
    stall = stall_limit(3.0, 1.0, 1.0)
    watch = Watch.begin(0.0)
    watch, dead = watch.read(b"1", 1.0, 3.0, stall)
    assert not dead
    for now in (2.0, 3.0, 3.9):
        watch, dead = watch.read(b"1", now, 3.0, stall)
        assert not dead
    assert watch.read(None, 4.0, 3.0, stall)[1]  # 3 s without a new beat, store reachable throughout


def test_a_gap_in_the_watchers_reads_gives_the_member_a_fresh_ttl() -> None:
    stall = stall_limit(3.0, 1.0, 1.0)
    watch, _ = Watch.begin(0.0).read(b"1", 1.0, 3.0, stall)
    watch, dead = watch.read(None, 9.0, 3.0, stall)  # 8 s without a read: the store (or we) stalled
    assert not dead
    watch, dead = watch.read(None, 10.0, 3.0, stall)
    assert not dead
    assert watch.read(None, 12.0, 3.0, stall)[1]  # a whole TTL after the store came back


def test_a_failed_read_breaks_the_stretch() -> None:
    stall = stall_limit(3.0, 1.0, 1.0)
    watch, _ = Watch.begin(0.0).read(b"1", 1.0, 3.0, stall)
    watch, _ = watch.read(b"1", 2.0, 3.0, stall)
    watch = watch.failed()
    watch, dead = watch.read(b"1", 4.5, 3.0, stall)  # 3.5 s since the change, but the stretch began now
    assert not dead
    for now in (5.5, 6.5):
        watch, dead = watch.read(b"1", now, 3.0, stall)
        assert not dead
    assert watch.read(b"1", 7.5, 3.0, stall)[1]


def test_stall_limit_is_never_below_two_ticks() -> None:
    assert stall_limit(15.0, 5.0, 1.0) == 9.0
    assert stall_limit(2.0, 1.0, 1.0) == 2.0


@pytest.mark.parametrize(
    ("world", "taken", "back", "gone", "closed", "expected"),
    [
        (3, 0, 0, 0, False, 0),
        (3, 1, 1, 0, False, 1),  # a member left for the next round: the others must restart
        (4, 1, 1, 0, False, 1),  # ... also when the round is full (W = max_nodes)
        (4, 2, 0, 0, False, 0),  # newcomers of a full round are spares
        (3, 2, 0, 1, False, 3),
        (3, 2, 1, 1, True, 0),  # a closed run is ending: nobody waits
    ],
)
def test_nodes_waiting(world: int, taken: int, back: int, gone: int, closed: bool, expected: int) -> None:
    assert nodes_waiting(world, 4, taken, back, gone, closed) == expected


def test_a_seal_gives_a_ticket_handed_out_twice_to_the_holder_whose_slot_it_read() -> None:
    ours, theirs = b'{"node": "a"}', b'{"node": "b"}'
    seal = keys.Seal(0, (1, 2), None, keys.slot_mark(theirs) + keys.slot_mark(b'{"node": "c"}'))
    again = keys.Seal.decode(seal.encode())
    assert again == seal
    assert again.rank_of(1, keys.slot_mark(theirs)) == 0
    assert again.rank_of(1, keys.slot_mark(ours)) is None
    assert keys.Seal(0, (1, 2)).rank_of(1, keys.slot_mark(ours)) == 0  # a seal without marks
    with pytest.raises(ValueError, match="slot marks"):
        keys.Seal.decode(b'{"round":0,"first":2,"marks":"00"}')


def test_seal_gate() -> None:
    assert seal_gate(None, 0, 0) == (True, False)
    assert seal_gate(3, 0, 0) == (False, False)
    assert seal_gate(3, 1, 0) == (True, False)
    assert seal_gate(3, 2, 1) == (True, True)


# -- store outages ----------------------------------------------------------------------


def test_a_store_frozen_longer_than_the_ttl_records_no_death(clusters: Any) -> None:
    cluster = clusters(3, 3, 3)
    run_in_threads(cluster.handlers, lambda h: h.next_rendezvous())
    assert until(lambda: all(h._heartbeat.observed is not None for h in cluster.handlers), 10)  # noqa: SLF001
    cluster.each(OutageStore.freeze)
    time.sleep(5 * TTL)  # every alive key lapses meanwhile
    cluster.each(OutageStore.restore)
    seen = settle(4 * TTL, cluster.handlers)
    assert cluster.counter(keys.dead(0)) == 0
    assert set(seen) == {0}


def test_a_store_down_then_back_empty_records_no_death_and_members_beat_again(clusters: Any) -> None:
    cluster = clusters(3, 3, 3, read_timeout=1)
    run_in_threads(cluster.handlers, lambda h: h.next_rendezvous())
    assert until(lambda: all(h._heartbeat.observed is not None for h in cluster.handlers), 10)  # noqa: SLF001
    cluster.each(OutageStore.take_down)
    # num_nodes_waiting neither raises nor waits for the store while it is down.
    during = settle(5 * TTL, cluster.handlers)
    cluster.empty()
    cluster.each(OutageStore.restore)
    after = settle(4 * TTL, cluster.handlers)
    assert set(during) == {0} and set(after) == {0}
    assert cluster.counter(keys.dead(0)) == 0
    assert all(cluster.outages[0].inner.read(keys.alive(0, rank)) is not None for rank in range(3))


def test_num_nodes_waiting_makes_no_store_call(clusters: Any) -> None:
    cluster = clusters(2, 2, 2)
    run_in_threads(cluster.handlers, lambda h: h.next_rendezvous())
    assert until(lambda: all(h._heartbeat.observed is not None for h in cluster.handlers), 10)  # noqa: SLF001
    cluster.each(OutageStore.freeze)
    done = threading.Event()
    answers: list[int] = []

    def ask() -> None:
        for _ in range(10):
            answers.append(cluster.handlers[0].num_nodes_waiting())
            time.sleep(TTL)
        done.set()

    threading.Thread(target=ask, daemon=True).start()
    # A call into the frozen store would block until the store is restored.
    assert done.wait(30), "num_nodes_waiting blocked on the frozen store"
    assert answers == [0] * 10


# -- a member that re-joins -------------------------------------------------------------


def test_a_member_that_re_joins_is_waited_for_by_the_others(clusters: Any) -> None:
    """Its workers failed, so its agent re-rendezvoused: the other members
    count it as waiting (as torch's wait list does) and all meet again."""
    cluster = clusters(3, 2, 4)
    first = run_in_threads(cluster.handlers, lambda h: h.next_rendezvous())
    assert {info.world_size for info in first} == {3}
    meet_again(cluster.handlers[0], cluster.handlers[1:], "the re-joiner", 10)
    assert len({h.membership.round_no for h in cluster.handlers}) == 1


# -- the end of a job -------------------------------------------------------------------


def test_shutdown_closes_the_run_so_a_spare_exits_instead_of_rerunning_the_job(clusters: Any) -> None:
    cluster = clusters(3, 1, 2)
    members, spare = cluster.handlers[:2], cluster.handlers[2]
    run_in_threads(members, lambda h: h.next_rendezvous())
    outcome: list[Any] = []

    def wait_as_spare() -> None:
        try:
            outcome.append(spare.next_rendezvous())
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            outcome.append(exc)

    thread = threading.Thread(target=wait_as_spare, daemon=True)
    thread.start()
    time.sleep(1.0)
    for member in members:  # the job ended: torch's launcher shuts the handlers down
        assert member.shutdown()
    thread.join(20)
    assert outcome and isinstance(outcome[0], RendezvousGracefulExitError), outcome
    assert members[0].is_closed()


def test_a_member_still_finishing_is_not_restarted_by_another_ones_shutdown(clusters: Any) -> None:
    cluster = clusters(2, 2, 2)
    run_in_threads(cluster.handlers, lambda h: h.next_rendezvous())
    cluster.handlers[0].shutdown()
    assert set(settle(4 * TTL, cluster.handlers[1:])) == {0}
    assert cluster.counter(keys.dead(0)) == 0


def test_leave_lets_the_others_go_on_without_a_ttl(clusters: Any) -> None:
    cluster = clusters(3, 2, 3)
    run_in_threads(cluster.handlers, lambda h: h.next_rendezvous())
    assert cluster.handlers[0].leave()
    assert until(lambda: all(h.num_nodes_waiting() == 1 for h in cluster.handlers[1:]), 10)
    second = run_in_threads(cluster.handlers[1:], lambda h: h.next_rendezvous())
    assert sorted(i.rank for i in second) == [0, 1]
    assert not cluster.handlers[1].is_closed()


def test_a_newcomer_after_the_store_lost_its_keys_is_waited_for(clusters: Any) -> None:
    """Found by the explorer: with the round hint gone a newcomer opened round
    0, which the members (in round 0, reading round 1's counters) never see.
    Members write the hint back; a waiter whose round the hint passed opens again."""
    cluster = clusters(3, 2, 4)
    members, newcomer = cluster.handlers[:2], cluster.handlers[2]
    run_in_threads(members, lambda h: h.next_rendezvous())
    assert until(lambda: all(h._heartbeat.observed is not None for h in members), 10)  # noqa: SLF001
    cluster.empty()  # a restart without persistence
    meet_again(newcomer, members, "the newcomer", 15)


def test_takeover_delay_lets_one_more_waiter_try_at_a_time() -> None:
    from rdzv_core.protocol.decisions import takeover_delay

    assert [takeover_delay(t, 2, 5, 4.0) for t in range(1, 8)] == [0.0, 0.0, 4.0, 8.0, 0.0, 12.0, 16.0]
    assert [takeover_delay(t, 1024, 1024, 4.0) for t in (1, 2, 3, 1023, 1024)] == [0.0, 4.0, 8.0, 4088.0, 0.0]


def test_a_waiter_whose_join_the_store_lost_takes_no_rank_twice(clusters: Any) -> None:
    """The store loses its keys while a node waits in round 0, then two more
    join: the ticket counter restarted, so one of them takes the waiter's
    ticket again. Every round still has distinct ranks, and all three meet."""
    cluster = clusters(3, 2, 3)
    first, second, third = cluster.handlers
    result: list[Any] = []
    waiter = threading.Thread(target=lambda: result.append(first.next_rendezvous()), daemon=True)
    waiter.start()
    assert until(lambda: cluster.outages[0].inner.read(keys.slot(0, 1)) is not None, 10)
    cluster.empty()
    infos = run_in_threads([second, third], lambda h: h.next_rendezvous())
    if infos[0].world_size == 3:  # the waiter saw its slot gone first and joined the same round again
        waiter.join(10)
        infos.append(result[0])
    else:
        assert sorted(i.rank for i in infos) == [0, 1] and {i.world_size for i in infos} == {2}
        waiter.join(0.5)
        assert not result, "the waiter took a rank in the round that admitted its ticket's second holder"
        assert until(lambda: second.num_nodes_waiting() > 0 and third.num_nodes_waiting() > 0, 10)
        infos = run_in_threads([second, third], lambda h: h.next_rendezvous())
        waiter.join(20)
        infos.append(result[0])
    assert sorted(i.rank for i in infos) == [0, 1, 2] and {i.world_size for i in infos} == {3}


STALE_LINE = "has not answered"


def _stale_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if STALE_LINE in r.getMessage()]


def test_no_outage_is_reported_before_the_heartbeats_first_observations(
    clusters: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """With the default 5-s keep-alive interval the regular observations begin
    up to 6 s after the round; the early one-off observation is not stale."""
    cluster = clusters(2, 2, 2, keep_alive_interval=5)
    run_in_threads(cluster.handlers, lambda h: h.next_rendezvous())
    caplog.set_level("WARNING", logger="rdzv_core.protocol.handler")
    assert settle(4.5, cluster.handlers) and not _stale_lines(caplog)


def test_a_frozen_store_is_reported_once_and_its_end_once(clusters: Any, caplog: pytest.LogCaptureFixture) -> None:
    cluster = clusters(2, 2, 2)
    run_in_threads(cluster.handlers, lambda h: h.next_rendezvous())
    assert until(lambda: all(h._heartbeat.observed is not None for h in cluster.handlers), 10)  # noqa: SLF001
    caplog.set_level("WARNING", logger="rdzv_core.protocol.handler")
    assert not _stale_lines(caplog)
    cluster.each(OutageStore.freeze)
    settle(2.0, cluster.handlers[:1])
    cluster.each(OutageStore.restore)
    assert until(lambda: cluster.handlers[0].num_nodes_waiting() == 0 and any(
        "fresh observations again" in r.getMessage() for r in caplog.records), 10)
    assert len(_stale_lines(caplog)) == 1
