"""pluggy hooks of the rdzv-etcd distribution (imports nothing heavy)."""

from __future__ import annotations

from rdzv_core.hookspecs import hookimpl


@hookimpl
def rdzv_adapters() -> list[type]:
    """The etcd v3 adapter."""
    from rdzv_etcd.adapter import EtcdStateStore

    return [EtcdStateStore]
