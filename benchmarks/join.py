"""Timing one rendezvous: N handlers call ``next_rendezvous()`` at once.

The clock starts when every agent thread is released and stops when the
last ``next_rendezvous()`` returns; the round counts as done only if the
ranks are exactly 0..N-1 in a world of N. A run that has not finished by
its timeout is reported as ``timeout`` (the handlers' own ``join_timeout``
is the same, so they give up by themselves and stop loading the store).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

from benchmarks.counters import Snapshot

#: Extra seconds past the timeout for agents to roll back and exit.
GRACE = 8.0
T = TypeVar("T")
R = TypeVar("R")


def fan_out(call: Callable[[T], R], items: Sequence[T], parallel: bool | str,
            server_of: Callable[[T], str] = lambda _: "") -> list[R]:
    """``[call(i) for i in items]``, in item order.

    ``parallel``: ``False`` one after the other; ``True`` all at once
    (``--quick``: a smoke run, not a measurement); ``"batched"`` in batches
    run one after the other, each batch at once, no two items of a batch on
    the same server (``server_of`` names it; ``""`` never conflicts), so
    that the server-side counters of a batch belong to one item each.
    """
    if parallel is False or len(items) < 2:
        return [call(item) for item in items]
    groups = [list(range(len(items)))] if parallel is True else batches(items, server_of)
    results: dict[int, R] = {}
    for batch in groups:
        with ThreadPoolExecutor(len(batch)) as pool:
            for index, result in zip(batch, pool.map(lambda i: call(items[i]), batch)):
                results[index] = result
    return [results[i] for i in range(len(items))]


@dataclass
class JoinOutcome:
    """What one timed rendezvous round produced."""

    status: str  # "ok", "timeout", "error: ..."
    seconds: float
    infos: list[Any] = field(default_factory=list)
    counts: Snapshot = field(default_factory=Snapshot)
    #: Store-side traffic during the join (Redis/etcd counters), if read.
    server: Any = None

    @property
    def ok(self) -> bool:
        """Whether every agent got a rank and the ranks are 0..N-1."""
        return self.status == "ok"


def check_ranks(infos: Sequence[Any], world: int) -> str:
    """``"ok"`` if ``infos`` hold ranks 0..world-1 in a world of ``world``."""
    ranks = sorted(getattr(i, "rank", -1) for i in infos)
    sizes = {getattr(i, "world_size", -1) for i in infos}
    if ranks != list(range(world)) or sizes != {world}:
        return f"error: ranks {ranks[:4]}... sizes {sorted(sizes)}"
    return "ok"


def batches(items: Sequence[T], server_of: Callable[[T], str]) -> list[list[int]]:
    """Indices of ``items`` in batches with no two items on the same server."""
    out: list[list[int]] = []
    for index, item in enumerate(items):
        server = server_of(item)
        for batch in out:
            if not server or server not in {server_of(items[i]) for i in batch}:
                batch.append(index)
                break
        else:
            out.append([index])
    return out


def timed_join(handlers: Sequence[Any], timeout: float, snapshot: Callable[[], Snapshot],
               call: Callable[[Any], Any] | None = None, check: bool = True,
               server: Callable[[], Any] | None = None) -> JoinOutcome:
    """Run ``call(handler)`` (default ``next_rendezvous``) in one thread per
    handler, released together; time until all returned. ``check=False``
    skips the rank check (a worker process holds only part of the world);
    ``server`` reads the store's own counters before and after."""
    call = call or (lambda h: h.next_rendezvous())
    count = len(handlers)
    results: list[Any] = [None] * count
    done_at: list[float] = [0.0] * count
    errors: list[BaseException] = []
    go = threading.Event()
    finished = threading.Semaphore(0)

    def agent(index: int) -> None:
        go.wait()
        try:
            results[index] = call(handlers[index])
            done_at[index] = time.monotonic()
        except BaseException as exc:  # noqa: BLE001 - reported in the outcome
            errors.append(exc)
        finally:
            finished.release()

    threads = [threading.Thread(target=agent, args=(i,), daemon=True, name=f"bench-agent-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    server = server or (lambda: None)
    before, server_before = snapshot(), server()
    started = time.monotonic()
    go.set()
    pending = count
    end = started + timeout
    while pending and time.monotonic() < end:
        if finished.acquire(timeout=max(0.0, min(0.5, end - time.monotonic()))):
            pending -= 1
            if errors:
                break
    counts = snapshot() - before
    server_after = server()
    served = server_after - server_before if server_before is not None and server_after is not None else None
    if pending or errors:
        timed_out = pending > 0 or any(type(e).__name__ == "RendezvousTimeoutError" for e in errors)
        # Let the stragglers give up on their own join_timeout before moving on.
        for thread in threads:
            thread.join(max(0.0, started + timeout + GRACE - time.monotonic()))
        if timed_out:
            return JoinOutcome("timeout", timeout, counts=counts, server=served)
        first = errors[0]
        return JoinOutcome(f"error: {type(first).__name__}: {str(first)[:120]}", time.monotonic() - started,
                           counts=counts, server=served)
    seconds = max(done_at) - started
    status = check_ranks(results, count) if check else "ok"
    return JoinOutcome(status, seconds, list(results), counts, served)
