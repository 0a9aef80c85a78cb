"""Conformance: torch's DynamicRendezvousHandler running on the adapter."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from torch.distributed.elastic.rendezvous import RendezvousHandler

from rdzv_core.handler import create_rdzv_handler
from rdzv_core.testing.harness import AdapterHarness

AGENTS = 8


def run_in_threads(handlers: list[RendezvousHandler], call: Callable[[RendezvousHandler], Any], timeout: float = 120) -> list[Any]:
    """Call ``call(handler)`` for every handler concurrently; return results in order."""
    results: list[Any] = [None] * len(handlers)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            results[index] = call(handlers[index])
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(handlers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads), "rendezvous did not finish in time"
    return results


def make_handlers(harness: AdapterHarness, count: int, min_nodes: int, max_nodes: int, **conf: Any) -> list[RendezvousHandler]:
    """``count`` handlers of one fresh run, each with its own adapter client."""
    run = harness.new_run_id()
    settings = {"last_call_timeout": 2, "keep_alive_interval": 1, "join_timeout": 120, **conf}
    return [
        create_rdzv_handler(harness.params(run, min_nodes, max_nodes, **settings), harness.registry())
        for _ in range(count)
    ]


def ranks_of(infos: list[Any]) -> tuple[list[int], set[int]]:
    """Sorted ranks and the set of world sizes of rendezvous results."""
    return sorted(info.rank for info in infos), {info.world_size for info in infos}


class RendezvousTests:
    """Multi-agent joins through torch's own handler."""

    def test_agents_join_with_distinct_ranks(self, harness: AdapterHarness) -> None:
        handlers = make_handlers(harness, AGENTS, AGENTS, AGENTS)
        try:
            infos = run_in_threads(handlers, lambda h: h.next_rendezvous())
            ranks, sizes = ranks_of(infos)
            assert ranks == list(range(AGENTS)) and sizes == {AGENTS}
            assert handlers[0].get_backend() == harness.backend
            assert len({info.bootstrap_store_info.master_port for info in infos}) == 1
        finally:
            handlers[0].shutdown()

    def test_re_rendezvous_after_an_agent_leaves(self, harness: AdapterHarness) -> None:
        handlers = make_handlers(harness, AGENTS, AGENTS - 1, AGENTS)
        try:
            first = run_in_threads(handlers, lambda h: h.next_rendezvous())
            assert ranks_of(first) == (list(range(AGENTS)), {AGENTS})
            # The last agent dies: its heartbeats stop (what a killed process
            # does; torch has no public call for it) and it never rejoins. Its
            # heartbeat lapses after keep_alive_interval * keep_alive_max_attempt.
            handlers[-1]._stop_heartbeats()  # noqa: SLF001
            survivors = handlers[:-1]
            second = run_in_threads(survivors, lambda h: h.next_rendezvous())
            assert ranks_of(second) == (list(range(AGENTS - 1)), {AGENTS - 1})
        finally:
            handlers[0].shutdown()

    def test_closed_rendezvous_is_seen_by_every_agent(self, harness: AdapterHarness) -> None:
        handlers = make_handlers(harness, 2, 2, 2)
        run_in_threads(handlers, lambda h: h.next_rendezvous())
        handlers[0].set_closed()
        assert handlers[0].is_closed()
        # is_closed() is eventually consistent (torch caches the state for 1 s).
        started = time.monotonic()
        while not handlers[1].is_closed() and time.monotonic() - started < 30:
            time.sleep(0.2)
        assert handlers[1].is_closed()

    def test_num_nodes_waiting_counts_a_late_joiner(self, harness: AdapterHarness) -> None:
        # min 2, max 3: two agents complete a round (after last call); the third
        # arrives late, waits for the next round and is counted by the others.
        handlers = make_handlers(harness, 3, 2, 3)
        try:
            run_in_threads(handlers[:2], lambda h: h.next_rendezvous())
            late = threading.Thread(target=lambda: _join_quietly(handlers[2]), daemon=True)
            late.start()
            started = time.monotonic()
            while handlers[0].num_nodes_waiting() == 0 and time.monotonic() - started < 60:
                time.sleep(0.2)
            assert handlers[0].num_nodes_waiting() == 1
        finally:
            handlers[0].shutdown()


def _join_quietly(handler: RendezvousHandler) -> None:
    try:
        handler.next_rendezvous()
    except Exception:  # noqa: BLE001 - ends with RendezvousClosedError on shutdown
        pass
