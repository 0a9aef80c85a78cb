"""pluggy hooks of rdzv-sqlite: imports nothing heavy (torch imports it on every launch)."""

from __future__ import annotations

from rdzv_core.hookspecs import hookimpl


@hookimpl
def rdzv_adapters() -> list[type]:
    """The adapters this distribution provides."""
    from rdzv_sqlite.adapter import SqliteStateStore

    return [SqliteStateStore]
