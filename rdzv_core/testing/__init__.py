"""The conformance suite every rdzv adapter runs, first- and third-party.

Usage in an adapter's own tests::

    import pytest
    from rdzv_core.testing import AdapterHarness, ConformanceSuite

    class TestMyStore(ConformanceSuite):
        @pytest.fixture
        def harness(self, my_server):
            return AdapterHarness(MyStateStore, endpoint=my_server.endpoint)

pytest then collects every conformance test for ``MyStateStore``. Importing
this package imports pytest and torch.
"""

from rdzv_core.testing.harness import AdapterHarness

__all__ = ["AdapterHarness", "ConformanceSuite"]


def __getattr__(name: str):  # lazy: the suite imports pytest and torch
    if name == "ConformanceSuite":
        from rdzv_core.testing.conformance import ConformanceSuite

        return ConformanceSuite
    raise AttributeError(name)
