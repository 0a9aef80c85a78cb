"""The shared heartbeat scheduler: one timer and a few workers per process,
whatever the number of handlers; a stopped heartbeat never beats again."""

from __future__ import annotations

import threading
import time

from rdzv_core.guarded import GuardedStore
from rdzv_core.protocol import keys
from rdzv_core.protocol.heartbeat import Heartbeat, Membership
from rdzv_core.protocol.scheduler import WORKERS, Scheduler
from rdzv_core.testing.memory import MemorySpace, MemoryStateStore


def _until(condition, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def _thread_names() -> set[str]:
    return {t.name for t in threading.enumerate()}


def test_many_heartbeats_share_a_few_threads() -> None:
    space, scheduler = MemorySpace(), Scheduler()
    store = GuardedStore(MemoryStateStore(space, "run"), "memory", read_timeout=5)
    before = threading.active_count()
    beats = [
        Heartbeat(store, Membership(0, rank, 64, rank + 1), interval=0.05, ttl=1.0, tick=0.05, scheduler=scheduler).start()
        for rank in range(64)
    ]
    try:
        # Every member beats (more than once) ...
        assert _until(lambda: all(store.read(keys.alive(0, r)) is not None for r in range(64)))
        assert _until(lambda: all(b.observed is not None for b in beats))
        # ... on the scheduler's timer and workers, not on a thread each.
        assert threading.active_count() - before <= WORKERS + 1
    finally:
        for beat in beats:
            beat.stop()


def test_a_stopped_heartbeat_never_beats_again() -> None:
    space, scheduler = MemorySpace(), Scheduler()
    store = GuardedStore(MemoryStateStore(space, "run"), "memory", read_timeout=5)
    beat = Heartbeat(store, Membership(0, 0, 2, 1), interval=0.02, ttl=5.0, tick=0.02, scheduler=scheduler).start()
    key = keys.alive(0, 0)
    assert _until(lambda: store.read(key) is not None and int(store.read(key).value.split()[0]) >= 3)
    beat.stop()
    stopped_at = store.read(key).value
    time.sleep(0.2)  # ten beat intervals
    assert store.read(key).value == stopped_at


def test_cancel_waits_for_a_run_in_progress() -> None:
    scheduler = Scheduler()
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()
    runs: list[float] = []

    def task() -> float:
        runs.append(time.monotonic())
        entered.set()
        release.wait(10)
        finished.set()
        return 0.01

    handle = scheduler.schedule(task)
    assert entered.wait(10)
    threading.Timer(0.2, release.set).start()
    handle.cancel()
    assert finished.is_set(), "cancel() returned while the task was still running"
    count = len(runs)
    time.sleep(0.1)
    assert len(runs) == count == 1


def test_a_blocked_task_does_not_hold_up_the_others() -> None:
    scheduler = Scheduler()
    block = threading.Event()
    ticks: list[int] = []
    stuck = scheduler.schedule(lambda: (block.wait(10), 1.0)[1])
    steady = scheduler.schedule(lambda: (ticks.append(1), 0.01)[1])
    try:
        assert _until(lambda: len(ticks) >= 20, timeout=5), "a blocked task stopped the others"
    finally:
        block.set()
        steady.cancel()
        stuck.cancel()
