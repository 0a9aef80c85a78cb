"""rdzv-core's conformance suite on the sqlite adapter, against a live store.

Set RDZV_SQLITE_TEST_ENDPOINT to a sqlite server the tests may write to
(HOST:PORT, or whatever --rdzv-endpoint your adapter takes).
"""

from __future__ import annotations

import os

import pytest

from rdzv_core.testing import AdapterHarness, ConformanceSuite
from rdzv_sqlite.adapter import SqliteStateStore


class TestSqliteStateStoreConformance(ConformanceSuite):
    @pytest.fixture
    def harness(self) -> AdapterHarness:
        return AdapterHarness(SqliteStateStore, endpoint=os.environ.get("RDZV_SQLITE_TEST_ENDPOINT", "localhost"))
