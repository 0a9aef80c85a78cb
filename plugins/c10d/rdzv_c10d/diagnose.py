"""``rdzv doctor`` for c10d: where the TCPStore is, and the operations the adapter uses.

The store of a c10d run lives in the agent that hosts it, so before the
launch nothing answers there; the core's checks say so as a warning. When
a store answers, each operation the adapter uses runs on a scratch key of
the run (``rdzv/<run>/doctor/<random>``, deleted afterwards).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Callable

from rdzv_core.doctor.checks import Check, NetworkTarget, failed, passed
from rdzv_core.endpoints import parse_endpoint

if TYPE_CHECKING:  # pragma: no cover
    from rdzv_core.settings import CoreSettings

    from rdzv_c10d.adapter import C10dStateStore


def network_targets(core: CoreSettings, default_port: int) -> list[NetworkTarget]:
    """The TCPStore's host and port (none for ``store_type=file``)."""
    if core.conf.choice("store_type", ("tcp", "file"), "tcp") == "file":
        return []
    endpoint = parse_endpoint(core.endpoint or "localhost", default_port)
    return [NetworkTarget(endpoint.host, endpoint.port, hosted_by_launch=True)]


def _kind(adapter: C10dStateStore) -> str:
    store = adapter.native_store()
    libuv = getattr(store, "libuvBackend", None)
    return f"{type(store).__name__}" + ("" if libuv is None else f" (libuv server: {'yes' if libuv else 'no'})")


def diagnose(adapter: C10dStateStore) -> list[Check]:
    """The store's kind, then each operation the adapter uses, on a scratch key."""
    scratch = f"doctor/{uuid.uuid4().hex[:8]}"
    steps: list[tuple[str, Callable[[], object]]] = [
        ("compare_set (cas, read)", lambda: adapter.cas(scratch, None, b"rdzv doctor")),
        ("set (write)", lambda: adapter.write(scratch, b"rdzv doctor")),
        ("add", lambda: adapter.add(scratch + "-count", 1)),
        ("check (wait)", lambda: adapter.wait([scratch], 0.0)),
        ("list_keys (runs, purge)", lambda: adapter.list_keys("doctor/")),
        ("delete_key", lambda: (adapter.delete(scratch), adapter.delete(scratch + "-count"))),
    ]
    done: list[str] = []
    for name, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - reported as a line
            return [passed("c10d store", _kind(adapter)),
                    failed("c10d operations", f"{name} failed: {type(exc).__name__}: {exc}",
                           "use the same torch version on every node and on the store's host")]
        done.append(name.split(" ", 1)[0])
    return [passed("c10d store", _kind(adapter)), passed("c10d operations", ", ".join(done))]
