"""The conformance suite: one class adapters subclass to run every test.

Subclasses provide a ``harness`` fixture (see
:class:`~rdzv_core.testing.harness.AdapterHarness`). Individual groups can be
mixed in on their own as well (e.g. only ``FencingTests``).
"""

from __future__ import annotations

from rdzv_core.testing.concurrency import ConcurrencyTests
from rdzv_core.testing.contract import FencingTests, PrimitiveTests
from rdzv_core.testing.rendezvous import MembershipChangeTests, RendezvousTests
from rdzv_core.testing.store_semantics import StoreSemanticsTests

__all__ = [
    "ConformanceSuite",
    "PrimitiveTests",
    "FencingTests",
    "StoreSemanticsTests",
    "ConcurrencyTests",
    "RendezvousTests",
    "MembershipChangeTests",
    "TransportSuite",
]


class TransportSuite(PrimitiveTests, FencingTests, StoreSemanticsTests, ConcurrencyTests):
    """Everything that depends on how a client reaches the store.

    For a second transport or credential set of an adapter whose plain
    variant already runs the whole :class:`ConformanceSuite` (TLS, ACL users):
    the multi-agent rendezvous tests exercise the protocols, not the
    connection, so they run once per adapter.
    """


class ConformanceSuite(
    PrimitiveTests, FencingTests, StoreSemanticsTests, ConcurrencyTests, RendezvousTests, MembershipChangeTests
):
    """Every conformance test; subclass it and provide a ``harness`` fixture."""
