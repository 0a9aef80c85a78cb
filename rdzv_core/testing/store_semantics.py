"""Conformance: the c10d Store semantics, reached through ``PrefixStore``.

The Store the handler returns (the adapter's native one, or the core's
bridge) must behave like torch's TCPStore, also when called from C++
(``PrefixStore``, gloo) and under ``init_process_group(store=...)``.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Iterator

import pytest
import torch
import torch.distributed as dist

from rdzv_core.handler import create_backend
from rdzv_core.testing.harness import AdapterHarness


class StoreSemanticsTests:
    """Store behaviour torch's agent and process groups rely on."""

    @pytest.fixture
    def store_pair(self, harness: AdapterHarness) -> Iterator[tuple[dist.Store, dist.Store]]:
        """Two clients' PrefixStores over the Store of one fresh run, as two
        agents hold them (torch's handler wraps its Store the same way)."""
        run, prefix = harness.new_run_id(), f"conformance-{harness.new_run_id()}"
        stores = [create_backend(harness.params(run), harness.registry())[1] for _ in range(2)]
        # The C++ PrefixStore does not keep a Python Store subclass alive: hold
        # the stores here, as torch's handler does for the life of the rendezvous.
        yield dist.PrefixStore(prefix, stores[0]), dist.PrefixStore(prefix, stores[1])
        del stores

    @pytest.fixture
    def prefix_store(self, store_pair: tuple[dist.Store, dist.Store]) -> dist.Store:
        """The first agent's Store."""
        return store_pair[0]

    def test_set_get_bytes(self, prefix_store: dist.Store) -> None:
        prefix_store.set("k", b"\x00\x01binary")
        assert prefix_store.get("k") == b"\x00\x01binary"
        prefix_store.set("s", "text")
        assert prefix_store.get("s") == b"text"

    def test_get_blocks_until_the_key_is_set(self, store_pair: tuple[dist.Store, dist.Store]) -> None:
        prefix_store, other_agent = store_pair
        timer = threading.Timer(0.3, lambda: other_agent.set("later", b"v"))
        timer.start()
        try:
            assert prefix_store.get("later") == b"v"
        finally:
            timer.join()

    def test_get_times_out_with_the_store_timeout(self, prefix_store: dist.Store) -> None:
        prefix_store.set_timeout(timedelta(seconds=0.5))
        started = time.monotonic()
        with pytest.raises(RuntimeError):
            prefix_store.get("never-set")
        assert 0.4 <= time.monotonic() - started < 30

    def test_add_counts_and_get_reads_ascii(self, prefix_store: dist.Store) -> None:
        assert prefix_store.add("n", 2) == 2
        assert prefix_store.add("n", 3) == 5
        assert prefix_store.get("n") == b"5"
        prefix_store.set("m", "10")
        assert prefix_store.add("m", 1) == 11

    def test_compare_set_is_value_based(self, prefix_store: dist.Store) -> None:
        assert prefix_store.compare_set("c", "", "first") == b"first"
        assert prefix_store.compare_set("c", "wrong", "second") == b"first"
        assert prefix_store.compare_set("c", "first", "second") == b"second"
        assert prefix_store.get("c") == b"second"

    def test_compare_set_on_missing_key_with_expected_value_leaves_it_missing(self, prefix_store: dist.Store) -> None:
        assert prefix_store.compare_set("absent", "expected", "desired") == b"expected"
        assert prefix_store.check(["absent"]) is False

    def test_wait_and_check(self, store_pair: tuple[dist.Store, dist.Store]) -> None:
        prefix_store, other_agent = store_pair
        assert prefix_store.check(["w1"]) is False
        timer = threading.Timer(0.2, lambda: other_agent.set("w1", b"1"))
        timer.start()
        try:
            prefix_store.wait(["w1"])
        finally:
            timer.join()
        assert prefix_store.check(["w1"]) is True
        prefix_store.wait(["w1"], timedelta(seconds=1))

    def test_wait_with_timeout_raises(self, prefix_store: dist.Store) -> None:
        started = time.monotonic()
        with pytest.raises(RuntimeError):
            prefix_store.wait(["nope"], timedelta(seconds=0.3))
        assert time.monotonic() - started < 30

    def test_delete_key_and_num_keys(self, prefix_store: dist.Store) -> None:
        before = prefix_store.num_keys()
        prefix_store.set("d1", b"1")
        prefix_store.set("d2", b"2")
        assert prefix_store.num_keys() == before + 2
        assert prefix_store.delete_key("d1") is True
        # (A second delete returns False on TCPStore but True on torch's own
        # FileStore, so its return value is not part of the contract.)
        prefix_store.delete_key("d1")
        assert prefix_store.num_keys() == before + 1
        assert prefix_store.check(["d1"]) is False

    def test_multi_get_and_multi_set(self, prefix_store: dist.Store) -> None:
        prefix_store.multi_set(["a", "b"], [b"1", "2"])
        assert prefix_store.multi_get(["a", "b"]) == [b"1", b"2"]

    def test_append_creates_and_extends(self, prefix_store: dist.Store) -> None:
        prefix_store.append("log", b"ab")
        prefix_store.append("log", "cd")
        assert prefix_store.get("log") == b"abcd"

    def test_gloo_process_group_runs_on_the_store(self, store_pair: tuple[dist.Store, dist.Store]) -> None:
        """gloo reaches the Store from C++ (set/get/wait through PrefixStore)."""
        results: dict[int, float] = {}
        errors: list[BaseException] = []

        def rank_main(rank: int) -> None:
            try:
                group = dist.ProcessGroupGloo(dist.PrefixStore("pg", store_pair[rank]), rank, 2, timedelta(seconds=60))
                tensor = torch.tensor([float(rank + 1)])
                group.allreduce([tensor]).wait()
                results[rank] = tensor.item()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        assert results == {0: 3.0, 1: 3.0}

    def test_init_process_group_accepts_the_store(self, prefix_store: dist.Store) -> None:
        dist.init_process_group("gloo", store=dist.PrefixStore("init", prefix_store), rank=0, world_size=1)
        try:
            tensor = torch.tensor([2.0])
            dist.all_reduce(tensor)
            assert tensor.item() == 2.0
        finally:
            dist.destroy_process_group()
