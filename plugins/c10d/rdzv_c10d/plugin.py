"""pluggy hooks of the rdzv-c10d distribution (imports nothing heavy)."""

from __future__ import annotations

from rdzv_core.hookspecs import hookimpl


@hookimpl
def rdzv_adapters() -> list[type]:
    """The c10d adapter."""
    from rdzv_c10d.adapter import C10dStateStore

    return [C10dStateStore]
