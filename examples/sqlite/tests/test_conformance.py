"""rdzv-core's conformance suite on the SQLite adapter.

The default journal (WAL, one host) runs the whole suite; ``journal_mode=delete``
(for shared filesystems) runs the transport suite: the multi-agent rendezvous
tests exercise the protocols, not how the bytes are stored.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rdzv_core.testing import AdapterHarness, ConformanceSuite
from rdzv_core.testing.conformance import TransportSuite
from rdzv_sqlite.adapter import SqliteStateStore


class TestSqliteConformance(ConformanceSuite):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> AdapterHarness:
        return AdapterHarness(SqliteStateStore, endpoint=str(tmp_path / "rdzv.db"))


class TestSqliteRollbackJournal(TransportSuite):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> AdapterHarness:
        return AdapterHarness(SqliteStateStore, endpoint=str(tmp_path / "rdzv.db"), conf={"journal_mode": "delete"})
