"""The scalable handler records torch's rendezvous events, as torch's handler does.

Tooling reads torch's events through a handler installed for the
``dynamic_rendezvous`` destination; the test installs one that keeps them.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Iterator

import pytest
from torch.distributed.elastic.events import handlers as event_handlers

import torch.distributed.elastic.events as torch_events
from rdzv_core.testing.harness import AdapterHarness
from rdzv_core.testing.memory import MemoryStateStore
from rdzv_core.testing.rendezvous import kill, make_handlers, run_in_threads


class Keep(logging.Handler):
    """Keeps every event it is handed, decoded."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(json.loads(record.getMessage()))


@pytest.fixture
def events() -> Iterator[Keep]:
    keep = Keep()
    before = event_handlers._log_handlers["dynamic_rendezvous"]  # noqa: SLF001
    event_handlers._log_handlers["dynamic_rendezvous"] = keep  # noqa: SLF001
    torch_events._events_loggers.pop("dynamic_rendezvous", None)  # noqa: SLF001 - built on first use
    yield keep
    event_handlers._log_handlers["dynamic_rendezvous"] = before  # noqa: SLF001
    torch_events._events_loggers.pop("dynamic_rendezvous", None)  # noqa: SLF001


@pytest.fixture
def harness(request: pytest.FixtureRequest) -> AdapterHarness:
    return AdapterHarness(MemoryStateStore, endpoint=f"events-{request.node.name}", conf={"read_timeout": 3})


def kinds(keep: Keep, run_id: str) -> list[tuple[str, str, int | None]]:
    """(method, node state, rank) of the run's events, in order."""
    return [(e["name"].split(".")[-1], e["node_state"], e["rank"]) for e in keep.events if e["run_id"] == run_id]


@pytest.mark.parametrize("protocol", ["torch", "scalable"])
def test_a_join_and_a_close_are_recorded_as_torch_records_them(events: Keep, harness: AdapterHarness,
                                                               protocol: str) -> None:
    handlers = make_handlers(harness, 2, 2, 2, protocol=protocol)
    run_id = handlers[0].get_run_id()
    infos = run_in_threads(handlers, lambda h: h.next_rendezvous())
    handlers[0].set_closed()
    recorded = kinds(events, run_id)
    assert recorded.count(("next_rendezvous", "RUNNING", None)) == 2  # attempts
    assert sorted(rank for method, state, rank in recorded if method == "next_rendezvous" and rank is not None) == \
        sorted(info.rank for info in infos)
    assert ("_close", "SUCCEEDED", None) in recorded
    names = {e["name"] for e in events.events if e["run_id"] == run_id}
    handler_class = "DynamicRendezvousHandler" if protocol == "torch" else "ScalableRendezvousHandler"
    assert any(handler_class in name for name in names), names


def test_a_dead_member_and_a_failed_join_are_recorded(events: Keep, harness: AdapterHarness) -> None:
    from torch.distributed.elastic.rendezvous import RendezvousTimeoutError

    handlers = make_handlers(harness, 3, 3, 3, protocol="scalable", keep_alive_interval=0.2,
                             keep_alive_max_attempt=3)
    run_id = handlers[0].get_run_id()
    run_in_threads(handlers, lambda h: h.next_rendezvous())
    kill(handlers[2])
    end = time.monotonic() + 15
    while not any("no heartbeat" in e["message"] for e in events.events) and time.monotonic() < end:
        time.sleep(0.1)
    assert any("no heartbeat" in e["message"] and e["run_id"] == run_id for e in events.events)
    (lonely,) = make_handlers(harness, 1, 2, 2, protocol="scalable", join_timeout=1)
    with pytest.raises(RendezvousTimeoutError):
        lonely.next_rendezvous()
    failed = [e for e in events.events if e["run_id"] == lonely.get_run_id() and e["node_state"] == "FAILED"]
    assert failed and failed[0]["message"].startswith("RendezvousTimeoutError")
