"""Conformance: many clients CASing one state, with and without faults."""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

from rdzv_core.backend import RdzvBackend
from rdzv_core.codec import FrameCodec
from rdzv_core.guarded import GuardedStore
from rdzv_core.testing.faults import FaultyStore
from rdzv_core.testing.harness import AdapterHarness

T = TypeVar("T")
THREADS = 16
INCREMENTS = 8


def cas_increment(backend: RdzvBackend, times: int) -> int:
    """CAS-increment a decimal counter state ``times`` times; return how many
    ``set_state`` calls reported success (must equal ``times``)."""
    applied = 0
    for _ in range(times):
        current = backend.get_state()
        while True:
            value, token = (0, None) if current is None else (int(current[0]), current[1])
            # Threads that read the same value write byte-identical payloads.
            result = backend.set_state(str(value + 1).encode(), token)
            if result is not None and result[2]:
                applied += 1
                break
            current = None if result is None else (result[0], result[1])
    return applied


def run_counter(backends: list[RdzvBackend]) -> tuple[int, int]:
    """Run :func:`cas_increment` on every backend in its own thread.

    Returns ``(successes reported, final counter value)``.
    """
    reported = each_in_a_thread(backends, lambda backend: cas_increment(backend, INCREMENTS))
    final = backends[0].get_state()
    return sum(reported), int(final[0]) if final else 0


def each_in_a_thread(items: list[Any], work: Callable[[Any], T]) -> list[T]:
    """``work(item)`` for every item, each in its own thread, all at once;
    the results (in no particular order). An error in any fails the test."""
    results: list[T] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(item: Any) -> None:
        try:
            result = work(item)
            with lock:
                results.append(result)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors
    return results


def backend_over(adapter, harness: AdapterHarness) -> RdzvBackend:  # type: ignore[no-untyped-def]
    """A backend on ``adapter`` configured as the handler would."""
    return RdzvBackend(GuardedStore(adapter, harness.backend, read_timeout=60.0), harness.backend, FrameCodec())


class ConcurrencyTests:
    """No update lost, none applied twice, under contention and faults."""

    def test_concurrent_cas_increments_are_exact(self, harness: AdapterHarness) -> None:
        run = harness.new_run_id()
        backends = [backend_over(harness.adapter(run), harness) for _ in range(THREADS)]
        reported, final = run_counter(backends)
        assert final == THREADS * INCREMENTS
        assert reported == THREADS * INCREMENTS

    def test_concurrent_increments_hand_out_each_number_once(self, harness: AdapterHarness) -> None:
        run = harness.new_run_id()
        adapters = [harness.adapter(run) for _ in range(THREADS)]
        taken = each_in_a_thread(adapters, lambda adapter: [adapter.increment("tickets") for _ in range(INCREMENTS)])
        numbers = [number for mine in taken for number in mine]
        assert sorted(numbers) == list(range(1, THREADS * INCREMENTS + 1))
        assert adapters[0].read("tickets").value == str(THREADS * INCREMENTS).encode()

    def test_exact_count_with_lost_replies_and_failed_sends(self, harness: AdapterHarness) -> None:
        run = harness.new_run_id()
        faulty = [FaultyStore(harness.adapter(run), every=3) for _ in range(THREADS)]
        backends = [backend_over(store, harness) for store in faulty]
        reported, final = run_counter(backends)
        assert sum(f.injected_after for f in faulty) > 0
        assert sum(f.injected_before for f in faulty) > 0
        assert final == THREADS * INCREMENTS
        assert reported == THREADS * INCREMENTS
