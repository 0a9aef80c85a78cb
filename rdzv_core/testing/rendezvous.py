"""Conformance: torch's DynamicRendezvousHandler running on the adapter."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator

import pytest

from torch.distributed.elastic.rendezvous import RendezvousHandler

from rdzv_core.handler import create_rdzv_handler
from rdzv_core.testing.harness import AdapterHarness

AGENTS = 8
#: Handlers made by the current test; their heartbeat threads are stopped
#: after it (a heartbeat outliving its store crashes the interpreter at exit).
_MADE: list[RendezvousHandler] = []


class StopsHeartbeats:
    """Mixin: after each test, stop the heartbeats of every handler it made."""

    @pytest.fixture(autouse=True)
    def _stop_heartbeats_after_test(self) -> Iterator[None]:
        yield
        while _MADE:
            _MADE.pop()._stop_heartbeats()  # type: ignore[attr-defined]  # noqa: SLF001


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


def make_handlers(
    harness: AdapterHarness, count: int, min_nodes: int, max_nodes: int, protocol: str = "torch", **conf: Any
) -> list[RendezvousHandler]:
    """``count`` handlers of one fresh run, each with its own adapter client."""
    run = harness.new_run_id()
    settings = {"last_call_timeout": 2, "keep_alive_interval": 1, "join_timeout": 120, "protocol": protocol, **conf}
    handlers = [
        create_rdzv_handler(harness.params(run, min_nodes, max_nodes, **settings), harness.registry())
        for _ in range(count)
    ]
    _MADE.extend(handlers)
    return handlers


class Joins:
    """``next_rendezvous`` of each handler in a thread of its own, started
    one at a time (a test acts on the store between two joins)."""

    def __init__(self, handlers: list[RendezvousHandler]) -> None:
        self.handlers = handlers
        self.results: list[Any] = [None] * len(handlers)
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    def start(self, index: int) -> None:
        """Start handler ``index``'s join."""
        def join() -> None:
            try:
                self.results[index] = self.handlers[index].next_rendezvous()
            except BaseException as exc:  # noqa: BLE001 - reported by finish()
                self.errors.append(exc)

        thread = threading.Thread(target=join, daemon=True)
        thread.start()
        self._threads.append(thread)

    def finish(self, timeout: float = 120) -> list[Any]:
        """Wait for every started join; assert that each completed; return the results."""
        for thread in self._threads:
            thread.join(timeout)
        assert not self.errors, self.errors
        assert not any(t.is_alive() for t in self._threads), "rendezvous did not finish in time"
        return self.results


def ranks_of(infos: list[Any]) -> tuple[list[int], set[int]]:
    """Sorted ranks and the set of world sizes of rendezvous results."""
    return sorted(info.rank for info in infos), {info.world_size for info in infos}


class RendezvousTests(StopsHeartbeats):
    """Multi-agent joins, for torch's own handler and rdzv's scalable one."""

    @pytest.fixture(params=["torch", "scalable"])
    def protocol(self, request: pytest.FixtureRequest) -> str:
        """Each rendezvous test runs once per protocol."""
        return request.param

    def test_agents_join_with_distinct_ranks(self, harness: AdapterHarness, protocol: str) -> None:
        handlers = make_handlers(harness, AGENTS, AGENTS, AGENTS, protocol=protocol)
        try:
            infos = run_in_threads(handlers, lambda h: h.next_rendezvous())
            ranks, sizes = ranks_of(infos)
            assert ranks == list(range(AGENTS)) and sizes == {AGENTS}
            assert handlers[0].get_backend() == harness.backend
            assert len({info.bootstrap_store_info.master_port for info in infos}) == 1
        finally:
            handlers[0].shutdown()

    def test_re_rendezvous_after_an_agent_leaves(self, harness: AdapterHarness, protocol: str) -> None:
        handlers = make_handlers(harness, AGENTS, AGENTS - 1, AGENTS, protocol=protocol)
        try:
            first = run_in_threads(handlers, lambda h: h.next_rendezvous())
            assert ranks_of(first) == (list(range(AGENTS)), {AGENTS})
            # The last agent dies and never rejoins; its heartbeat lapses after
            # keep_alive_interval * keep_alive_max_attempt.
            kill(handlers[-1])
            survivors = handlers[:-1]
            second = run_in_threads(survivors, lambda h: h.next_rendezvous())
            assert ranks_of(second) == (list(range(AGENTS - 1)), {AGENTS - 1})
        finally:
            handlers[0].shutdown()

    def test_closed_rendezvous_is_seen_by_every_agent(self, harness: AdapterHarness, protocol: str) -> None:
        handlers = make_handlers(harness, 2, 2, 2, protocol=protocol)
        run_in_threads(handlers, lambda h: h.next_rendezvous())
        handlers[0].set_closed()
        assert handlers[0].is_closed()
        # is_closed() is eventually consistent (torch caches the state for 1 s).
        started = time.monotonic()
        while not handlers[1].is_closed() and time.monotonic() - started < 30:
            time.sleep(0.2)
        assert handlers[1].is_closed()

    def test_num_nodes_waiting_counts_a_late_joiner(self, harness: AdapterHarness, protocol: str) -> None:
        # min 2, max 3: two agents complete a round (after last call); the third
        # arrives late, waits for the next round and is counted by the others.
        handlers = make_handlers(harness, 3, 2, 3, protocol=protocol)
        try:
            run_in_threads(handlers[:2], lambda h: h.next_rendezvous())
            late = threading.Thread(target=lambda: _join_quietly(handlers[2]), daemon=True)
            late.start()
            started = time.monotonic()
            while handlers[0].num_nodes_waiting() == 0 and time.monotonic() - started < 60:
                time.sleep(0.2)
            assert handlers[0].num_nodes_waiting() == 1
        finally:
            handlers[0].set_closed()  # releases the late joiner
            handlers[0].shutdown()
        late.join(30)
        assert not late.is_alive()


def _join_quietly(handler: RendezvousHandler) -> None:
    try:
        handler.next_rendezvous()
    except Exception:  # noqa: BLE001 - ends with RendezvousClosedError on shutdown
        pass


def kill(handler: RendezvousHandler) -> None:
    """Make ``handler`` look crashed: its heartbeats stop and it never calls
    again (both protocols' handlers keep their heartbeat thread there)."""
    handler._stop_heartbeats()  # type: ignore[attr-defined]  # noqa: SLF001


class MembershipChangeTests(StopsHeartbeats):
    """Spares, deaths and timeouts, for both protocols."""

    @pytest.fixture(params=["torch", "scalable"])
    def protocol(self, request: pytest.FixtureRequest) -> str:
        """Each test runs once per protocol."""
        return request.param

    def test_spare_beyond_max_joins_after_a_member_dies(self, harness: AdapterHarness, protocol: str) -> None:
        handlers = make_handlers(harness, 3, 2, 2, protocol=protocol)
        try:
            first = run_in_threads(handlers[:2], lambda h: h.next_rendezvous())
            assert ranks_of(first) == ([0, 1], {2})
            spare_result: list[Any] = []
            spare = threading.Thread(target=lambda: spare_result.append(handlers[2].next_rendezvous()), daemon=True)
            spare.start()
            time.sleep(1.5)
            assert handlers[0].num_nodes_waiting() == 0  # a spare beyond max_nodes is not "waiting"
            kill(handlers[1])
            second = run_in_threads([handlers[0]], lambda h: h.next_rendezvous())
            spare.join(60)
            assert spare_result, "the spare was not admitted after the death"
            assert ranks_of([second[0], spare_result[0]]) == ([0, 1], {2})
        finally:
            handlers[0].shutdown()

    def test_join_times_out_without_quorum(self, harness: AdapterHarness, protocol: str) -> None:
        from torch.distributed.elastic.rendezvous import RendezvousTimeoutError

        (handler,) = make_handlers(harness, 1, 2, 2, protocol=protocol, join_timeout=2)
        started = time.monotonic()
        with pytest.raises(RendezvousTimeoutError):
            handler.next_rendezvous()
        assert time.monotonic() - started < 30
