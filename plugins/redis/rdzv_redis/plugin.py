"""pluggy hooks of the rdzv-redis distribution (imports nothing heavy)."""

from __future__ import annotations

from rdzv_core.hookspecs import hookimpl


@hookimpl
def rdzv_adapters() -> list[type]:
    """The Redis adapter (its module imports redis-py only when connecting)."""
    from rdzv_redis.adapter import RedisStateStore

    return [RedisStateStore]
