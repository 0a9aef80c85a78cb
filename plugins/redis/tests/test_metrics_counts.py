"""The metrics of the core's guarded store count what happened on a real Redis:
operations, retries after a lost reply, and operations that failed for good."""

from __future__ import annotations

import pytest

from rdzv_core.guarded import GuardedStore, StoreFailure
from rdzv_core.metrics import RdzvMetrics
from rdzv_core.testing import AdapterHarness
from rdzv_core.testing.proxy import FlakyProxy
from rdzv_redis.adapter import RedisStateStore
from rdzv_redis.testing.servers import RedisServer


def _sample(metrics: RdzvMetrics, name: str, operation: str) -> float:
    value = metrics.registry.get_sample_value(name, {"operation": operation})
    return 0.0 if value is None else value


def test_a_lost_reply_counts_a_retry_and_an_unreachable_store_an_error(redis_server: RedisServer) -> None:
    with FlakyProxy("127.0.0.1", redis_server.port) as proxy:
        harness = AdapterHarness(RedisStateStore, endpoint=proxy.endpoint,
                                 conf={"read_timeout": 2, "connect_timeout": 1}, backend_name="redis")
        adapter = harness.adapter(harness.new_run_id())
        metrics = RdzvMetrics("redis", "job")
        store = GuardedStore(adapter, "redis", 2.0, metrics)
        try:
            store.write("k", b"first")
            proxy.cut_reply_of(b"value-whose-reply-is-lost")
            store.write("k", b"value-whose-reply-is-lost")  # applied, reply lost, retried
            assert proxy.replies_cut == 1
            assert store.read("k").value == b"value-whose-reply-is-lost"
            assert _sample(metrics, "rdzv_store_operations_total", "write") == 2
            assert _sample(metrics, "rdzv_store_retries_total", "write") >= 1
            assert _sample(metrics, "rdzv_store_errors_total", "write") == 0
            assert _sample(metrics, "rdzv_store_operation_seconds_count", "read") == 1

            proxy.stop()  # nothing listens any more: every attempt is refused until the deadline
            with pytest.raises(StoreFailure):
                store.write("k", b"never")
            assert _sample(metrics, "rdzv_store_errors_total", "write") == 1
            assert _sample(metrics, "rdzv_store_operations_total", "write") == 3
        finally:
            adapter.close()
