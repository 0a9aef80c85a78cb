"""rdzv's scalable protocol: torch's replacement-node bug, and randomized rounds."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.distributed.elastic.rendezvous import RendezvousParameters

from rdzv_core.bridge import BridgeStore
from rdzv_core.codec import FrameCodec
from rdzv_core.guarded import GuardedStore
from rdzv_core.protocol.handler import HandlerSettings, ScalableRendezvousHandler
from rdzv_core.settings import CoreSettings
from rdzv_core.testing.faults import FaultyStore
from rdzv_core.testing.harness import AdapterHarness
from rdzv_core.testing.memory import MemorySpace, MemoryStateStore
from rdzv_core.testing.rendezvous import kill, make_handlers, run_in_threads


@pytest.fixture
def harness(request: pytest.FixtureRequest) -> AdapterHarness:
    return AdapterHarness(MemoryStateStore, endpoint=f"scalable-{request.node.name}", conf={"read_timeout": 3})


def unpatched_torch_handlers(harness: AdapterHarness, count: int) -> list[Any]:
    """torch's own handler exactly as torch builds it, on rdzv's backend."""
    from torch.distributed.elastic.rendezvous.dynamic_rendezvous import create_handler

    from rdzv_core.handler import create_backend
    from rdzv_core.testing.rendezvous import _MADE

    run = harness.new_run_id()
    conf = {"last_call_timeout": 2, "keep_alive_interval": 1, "keep_alive_max_attempt": 2}
    handlers = []
    for _ in range(count):
        params = harness.params(run, 3, 3, **conf)
        backend, store = create_backend(params, harness.registry())
        handlers.append(create_handler(store, backend, params))
    _MADE.extend(handlers)
    return handlers


def replace_a_dead_member(harness: AdapterHarness, protocol: str) -> Any:
    """Round 1: three agents. The last dies; a replacement joins; the two
    survivors re-rendezvous with it. Returns the replacement's result."""
    if protocol == "torch-unpatched":
        handlers = unpatched_torch_handlers(harness, 4)
    else:
        handlers = make_handlers(harness, 4, 3, 3, protocol=protocol, keep_alive_max_attempt=2)
    first = run_in_threads(handlers[:3], lambda h: h.next_rendezvous())
    dead = next(h for h, info in zip(handlers, first) if info.rank == 2)
    kill(dead)
    survivors = [h for h in handlers[:3] if h is not dead]
    try:
        return run_in_threads([*survivors, handlers[3]], lambda h: h.next_rendezvous(), timeout=60)
    finally:
        survivors[0].shutdown()


def test_torch_handler_leaves_a_replacement_blocked_on_master_addr(harness: AdapterHarness) -> None:
    """The reproduction: with the agent store shared (torch's default), rank 0
    publishes MASTER_ADDR only in its first round, so a replacement that is not
    rank 0 times out reading it in the next round."""
    with pytest.raises(AssertionError, match=r"MASTER_ADDR|wait timeout"):
        replace_a_dead_member(harness, "torch-unpatched")


@pytest.mark.parametrize("protocol", ["torch", "scalable"])
def test_rdzv_handlers_give_the_replacement_the_new_master_address(harness: AdapterHarness, protocol: str) -> None:
    """Both of rdzv's handlers: rdzv's torch handler republishes every round
    (publish_worker_store_every_round); the scalable one always does."""
    infos = replace_a_dead_member(harness, protocol)
    assert sorted(info.rank for info in infos) == [0, 1, 2]
    addresses = {(i.bootstrap_store_info.master_addr, i.bootstrap_store_info.master_port) for i in infos}
    assert len(addresses) == 1


def test_the_seal_carries_rank_zeros_agent_store_endpoint(harness: AdapterHarness) -> None:
    """The holder of ticket 1 announces its agent store; the sealer copies it
    into the seal, so the other members need no MASTER_ADDR/PORT reads; rank
    0 still publishes torch's keys for anything that reads them."""
    handlers = make_handlers(harness, 3, 3, 3, protocol="scalable")
    infos = run_in_threads(handlers, lambda h: h.next_rendezvous())
    rank0 = next(h for h, info in zip(handlers, infos) if info.rank == 0)
    seal = rank0._joiner.read_seal(0)  # noqa: SLF001
    assert seal is not None and seal.master is not None
    assert seal.master[1] == rank0._agent_store_server.port  # noqa: SLF001
    for info in infos:
        assert (info.bootstrap_store_info.master_addr, info.bootstrap_store_info.master_port) == seal.master
        assert info.store.get("MASTER_PORT") == str(seal.master[1]).encode()


@pytest.mark.parametrize("master", [None, ("10.0.0.7", 29511), ("::1", 1)])
@pytest.mark.parametrize("tickets", [(1, 2, 3), (2, 5, 9)])
def test_seal_encoding_round_trips(tickets: tuple[int, ...], master: tuple[str, int] | None) -> None:
    from rdzv_core.protocol.keys import Seal

    seal = Seal(4, tickets, master)
    assert Seal.decode(seal.encode()) == seal


# -- randomized rounds -------------------------------------------------------------

FAST = {"keep_alive_interval": 0.25, "keep_alive_max_attempt": 4, "last_call_timeout": 0.3, "join_timeout": 15}


def rendezvous_like_agents(handlers: list[ScalableRendezvousHandler], timeout: float = 60) -> list[Any]:
    """Every handler rendezvouses; like torch's agent, one that completed a
    round re-rendezvouses while ``num_nodes_waiting() > 0``. Returns the
    final results once all are done and nobody is waiting."""
    import time

    results: dict[int, Any] = {}
    errors: list[BaseException] = []
    threads: dict[int, threading.Thread] = {}

    def start(index: int) -> None:
        def call() -> None:
            try:
                results[index] = handlers[index].next_rendezvous()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        results.pop(index, None)
        threads[index] = threading.Thread(target=call, daemon=True)
        threads[index].start()

    for index in range(len(handlers)):
        start(index)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not errors:
        time.sleep(0.3)
        busy = [i for i, t in threads.items() if t.is_alive()]
        waiting = [i for i in range(len(handlers)) if i not in busy and handlers[i].num_nodes_waiting() > 0]
        for index in waiting:
            start(index)
        if not busy and not waiting:
            return [results[i] for i in range(len(handlers))]
    raise AssertionError(f"agents did not settle: errors={errors}")


def scalable_handler(space: MemorySpace, run: str, min_nodes: int, max_nodes: int, faulty: bool) -> ScalableRendezvousHandler:
    params = RendezvousParameters("memory", "x", run, min_nodes, max_nodes, local_addr="127.0.0.1", **FAST)
    adapter: Any = MemoryStateStore(space, run)
    if faulty:  # lost replies and failed sends on CAS, reads and writes
        adapter = FaultyStore(adapter, every=4, operations=("cas", "read", "write"))
    store = GuardedStore(adapter, "memory", read_timeout=10)
    return ScalableRendezvousHandler("memory", HandlerSettings.of(CoreSettings.parse(params)), store,
                                     BridgeStore(store, timedelta(seconds=10)), FrameCodec())


events = st.lists(st.sampled_from(["kill", "leave", "join"]), min_size=1, max_size=3)


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(start=st.integers(2, 4), events=events, faulty=st.lists(st.booleans(), min_size=8, max_size=8))
def test_random_joins_leaves_and_deaths_keep_rounds_consistent(start: int, events: list[str], faulty: list[bool]) -> None:
    """Every completed round: distinct ranks 0..W-1 agreed by all members, one
    round number, and every live node that asked is in it."""
    space, run = MemorySpace(), f"hyp-{id(events)}-{start}"
    min_nodes, max_nodes = 1, 8
    live = [scalable_handler(space, run, min_nodes, max_nodes, faulty[i]) for i in range(start)]
    made = len(live)
    try:
        for event in [None, *events]:
            if event == "kill" and len(live) > 1:
                kill(live.pop(0))
            elif event == "leave" and len(live) > 1:
                live.pop(0).leave()
            elif event == "join":
                live.append(scalable_handler(space, run, min_nodes, max_nodes, faulty[made % 8]))
                made += 1
            infos = rendezvous_like_agents(live)
            assert sorted(info.rank for info in infos) == list(range(len(live)))
            assert {info.world_size for info in infos} == {len(live)}
            assert len({h.membership.round_no for h in live}) == 1
    finally:
        for handler in live:
            handler.shutdown()


def test_rank_zero_hosts_a_new_workers_store_every_round(harness: AdapterHarness) -> None:
    """torch's workers prefix their store keys by the restart count only, which
    a membership change does not bump: on the same store, the second round's
    workers read the first round's gloo addresses. So the node that is rank 0
    again hosts a new store (found by the network lab: gloo 'Connection
    refused' to a previous round's address)."""
    import time

    handlers = make_handlers(harness, 2, 2, 2, protocol="scalable")
    try:
        first = run_in_threads(handlers, lambda h: h.next_rendezvous())
        rank0 = next(h for h, info in zip(handlers, first) if info.rank == 0)
        other = next(h for h in handlers if h is not rank0)
        before = next(info for info in first if info.rank == 0).bootstrap_store_info
        results: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: results.update(rank0=rank0.next_rendezvous()))
        thread.start()
        time.sleep(0.5)  # it takes ticket 1 of round 1: rank 0 again
        results["other"] = other.next_rendezvous()
        thread.join(30)
        after = results["rank0"].bootstrap_store_info
        assert results["rank0"].rank == 0
        assert after.master_port != before.master_port
        assert results["other"].bootstrap_store_info.master_port == after.master_port
    finally:
        handlers[0].shutdown()
