"""Store-side errors: torch's DistNetworkError/DistStoreError naming the store."""

import time
from datetime import timedelta

import pytest
import torch.distributed as dist

from rdzv_core.bridge import BridgeStore
from rdzv_core.guarded import GuardedStore
from rdzv_core.testing.faults import FaultyStore
from rdzv_core.testing.memory import MemorySpace, MemoryStateStore


def bridge(every: int, read_timeout: float = 0.3) -> BridgeStore:
    adapter = FaultyStore(MemoryStateStore(MemorySpace(), "run"), every=every)
    return BridgeStore(GuardedStore(adapter, "memory", read_timeout), timedelta(seconds=5))


def test_unreachable_store_raises_dist_network_error_naming_operation_and_key() -> None:
    store = bridge(every=1)
    started = time.monotonic()
    with pytest.raises(dist.DistNetworkError, match=r"rdzv backend 'memory' at memory .*write of key 'kv/k' failed: gave up"):
        store.set("k", b"v")
    assert time.monotonic() - started < 5


def test_wait_timeout_raises_dist_store_error_with_keys() -> None:
    store = BridgeStore(GuardedStore(MemoryStateStore(MemorySpace(), "run"), "memory", 5), timedelta(seconds=5))
    with pytest.raises(dist.DistStoreError, match=r"wait timeout after 200ms, keys: a, b"):
        store.wait(["a", "b"], timedelta(milliseconds=200))


def test_transient_faults_are_invisible_to_store_callers() -> None:
    store = bridge(every=3, read_timeout=10)
    for i in range(10):
        store.set(f"k{i}", str(i))
    assert store.multi_get([f"k{i}" for i in range(10)]) == [str(i).encode() for i in range(10)]
    assert store.compare_set("k1", "1", "one") == b"one"
