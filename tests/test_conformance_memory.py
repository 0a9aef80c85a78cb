"""The conformance suite on the in-memory reference adapter."""

import pytest

from rdzv_core.testing import AdapterHarness, ConformanceSuite
from rdzv_core.testing.memory import MemoryStateStore


class TestMemoryConformance(ConformanceSuite):
    @pytest.fixture
    def harness(self, request: pytest.FixtureRequest) -> AdapterHarness:
        return AdapterHarness(MemoryStateStore, endpoint=f"space-{request.node.name}")
