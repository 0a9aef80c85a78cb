"""Progress logs of the scalable handler (issue 13, item 6): a waiting node
says why its round is not complete every few seconds, and one line when it is."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from rdzv_core.protocol import rounds
from rdzv_core.testing.harness import AdapterHarness
from rdzv_core.testing.memory import MemoryStateStore
from rdzv_core.testing.rendezvous import make_handlers


def test_a_waiting_node_says_what_it_waits_for_then_one_line_when_complete(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(rounds, "PROGRESS_INTERVAL", 0.3)
    harness = AdapterHarness(MemoryStateStore, endpoint="progress-logs", conf={"read_timeout": 3})
    first, second = make_handlers(harness, 2, 2, 2, "scalable")
    caplog.set_level(logging.INFO, logger="rdzv_core.protocol")
    results: list[object] = []
    waiter = threading.Thread(target=lambda: results.append(first.next_rendezvous()))
    waiter.start()
    deadline = time.monotonic() + 20
    while "waiting for 1 more" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.1)
    waiting = [r.getMessage() for r in caplog.records if "waiting for round" in r.getMessage()]
    assert waiting and waiting[0].endswith(": waiting for round 0: 1 of min 2 nodes joined round 0; waiting for "
                                           "1 more; join timeout in 2 min"), waiting
    second.next_rendezvous()
    waiter.join(20)
    done = [r.getMessage() for r in caplog.records if "complete: rank" in r.getMessage()]
    assert len(done) == 2 and all("round 0 complete: rank" in m and "of world size 2, in " in m for m in done), done
    for handler in (first, second):
        handler.shutdown()
