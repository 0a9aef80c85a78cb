"""rdzv's init_method handler in one process, on the in-memory reference adapter.

Multi-process gloo jobs on real stores are in the plugins' test_init_method.py.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import torch.distributed as dist
from torch.distributed.rendezvous import register_rendezvous_handler

import rdzv_core.init_method as init_method
from rdzv_core.errors import RdzvConfigError
from rdzv_core.plugins import AdapterInfo, BackendRegistry
from rdzv_core.testing.memory import SPACES, MemorySpace, MemoryStateStore


class ForeignMemory(MemoryStateStore):
    """The memory adapter under a name whose scheme another library took."""

    name = "foreign"


@pytest.fixture(scope="module", autouse=True)
def memory_scheme() -> None:
    registry = BackendRegistry(adapters={
        "memory": AdapterInfo("memory", MemoryStateStore, "under-test", "0"),
        "foreign": AdapterInfo("foreign", ForeignMemory, "under-test", "0"),
    })
    register_rendezvous_handler("rdzv+foreign", lambda url, **kw: iter(()))
    init_method.register(registry)


def rendezvous(url: str) -> tuple[dist.Store, int, int]:
    return next(dist.rendezvous(url, timeout=timedelta(seconds=5)))


def test_the_import_registered_rdzv_schemes_with_torch() -> None:
    # torch raises for a scheme registered twice: these are taken.
    for scheme in ("redis", "rediss", "etcd", "rdzv+redis", "rdzv+etcd", "rdzv+c10d", "rdzv+memory"):
        with pytest.raises(RuntimeError, match="already registered"):
            register_rendezvous_handler(scheme, lambda url, **kw: iter(()))


def test_a_store_under_the_runs_init_prefix() -> None:
    space = SPACES.setdefault("unit-a", MemorySpace())
    store, rank, world_size = rendezvous("rdzv+memory://unit-a/run1?rank=1&world_size=2")
    assert (rank, world_size) == (1, 2)
    store.set("k", b"v")
    assert store.get("k") == b"v"
    direct = MemoryStateStore(space, "run1")
    assert direct.read("init/kv/k").value == b"v"
    assert direct.read("init/world_size").value == b"2"
    assert direct.read("init/joined").value == b"1"


def test_a_second_rendezvous_in_the_process_shares_the_store_and_joins_once() -> None:
    first, _, _ = rendezvous("rdzv+memory://unit-b/run?rank=0&world_size=2")
    second, _, _ = rendezvous("rdzv+memory://unit-b/run?rank=0&world_size=2")
    assert second is first
    assert MemoryStateStore(SPACES["unit-b"], "run").read("init/joined").value == b"1"


def test_a_reused_run_id_is_refused() -> None:
    rendezvous("rdzv+memory://unit-c/run?rank=0&world_size=1")
    init_method._stores.clear()  # noqa: SLF001 - as if a new process of a later job
    with pytest.raises(RdzvConfigError, match="process number 2 to join a run of world_size 1: the run id was used"):
        rendezvous("rdzv+memory://unit-c/run?rank=0&world_size=1")


def test_processes_disagreeing_on_the_world_size_are_refused() -> None:
    rendezvous("rdzv+memory://unit-d/run?rank=0&world_size=2")
    with pytest.raises(RdzvConfigError, match="world_size=3, but the run was started with world_size=2"):
        rendezvous("rdzv+memory://unit-d/run?rank=1&world_size=3")


def test_a_scheme_another_library_registered_keeps_its_handler(caplog: pytest.LogCaptureFixture) -> None:
    registry = BackendRegistry(adapters={"foreign": AdapterInfo("foreign", ForeignMemory, "under-test", "0")})
    with caplog.at_level(logging.WARNING, logger="rdzv_core.init_method"):
        assert "rdzv+foreign" not in init_method.register(registry)
    assert "already has an init_method handler for rdzv+foreign://" in caplog.text
    assert list(dist.rendezvous("rdzv+foreign://x/run?rank=0&world_size=1")) == []


def test_a_first_party_scheme_whose_adapter_is_missing_says_what_to_install() -> None:
    registry = BackendRegistry()
    handler = init_method._handler(registry)  # noqa: SLF001 - as registered where rdzv-etcd is not installed
    with pytest.raises(ValueError, match="It is provided by the 'rdzv-etcd' package: pip install rdzv-etcd"):
        next(handler("etcd://h:2379/run?rank=0&world_size=1"))
