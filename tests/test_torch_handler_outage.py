"""torch's own handler on rdzv (protocol=torch) through a store outage.

torch's agent calls ``num_nodes_waiting()`` from its monitor loop and ends
when it raises; torch's handler reads its state there. rdzv's handler
factory keeps the last good answer through an outage instead
(``answer_waiting_through_outages``).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rdzv_core.testing.faults import OutageStore
from rdzv_core.testing.harness import AdapterHarness
from rdzv_core.testing.memory import MemoryStateStore
from rdzv_core.testing.rendezvous import StopsHeartbeats, make_handlers, run_in_threads


class OutageMemory(OutageStore):
    """The reference adapter behind an outage switch, built from parameters
    (so torch's handler gets it through rdzv's factory)."""

    name = "outage-memory"
    made: ClassVar[list[OutageMemory]] = []

    @classmethod
    def from_params(cls, params: Any, core: Any) -> OutageMemory:
        """The in-memory adapter of ``params``, wrapped."""
        adapter = cls(MemoryStateStore.from_params(params, core))
        cls.made.append(adapter)
        return adapter


class TestTorchHandlerOutage(StopsHeartbeats):
    def test_num_nodes_waiting_answers_through_a_store_outage(self) -> None:
        harness = AdapterHarness(OutageMemory, endpoint=f"torch-outage-{time.monotonic_ns()}",
                                 conf={"read_timeout": 1})
        OutageMemory.made.clear()
        handlers = make_handlers(harness, 2, 2, 2, protocol="torch", last_call_timeout=1)
        run_in_threads(handlers, lambda h: h.next_rendezvous())
        assert [h.num_nodes_waiting() for h in handlers] == [0, 0]
        for adapter in OutageMemory.made:
            adapter.take_down()
        time.sleep(1.2)  # past torch's 1 s state cache: the next call reads the store
        try:
            answers = [h.num_nodes_waiting() for h in handlers for _ in range(2)]
        finally:
            for adapter in OutageMemory.made:
                adapter.restore()
        assert answers == [0, 0, 0, 0]
        assert all(adapter.refused > 0 for adapter in OutageMemory.made)
        assert [h.num_nodes_waiting() for h in handlers] == [0, 0]
        handlers[0].shutdown()
