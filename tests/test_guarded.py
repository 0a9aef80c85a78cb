"""Retry, deadlines and error classification of the core around an adapter."""

import time

import pytest

from rdzv_core.guarded import GuardedStore, StoreFailure
from rdzv_core.testing.faults import FaultyStore
from rdzv_core.testing.memory import MemorySpace, MemoryStateStore


def memory() -> MemoryStateStore:
    return MemoryStateStore(MemorySpace(), "run")


def test_transient_failures_are_retried_until_success() -> None:
    faulty = FaultyStore(memory(), every=2, operations=("write", "read"))
    guarded = GuardedStore(faulty, "memory", read_timeout=10)
    for i in range(6):
        guarded.write(f"k{i}", b"v")
    assert all(guarded.read(f"k{i}").value == b"v" for i in range(6))
    assert faulty.injected_before + faulty.injected_after >= 5


def test_persistent_transient_failure_times_out_naming_the_operation() -> None:
    guarded = GuardedStore(FaultyStore(memory(), every=1), "memory", read_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(StoreFailure) as info:
        guarded.read("state")
    assert time.monotonic() - started < 5
    failure = info.value
    assert failure.timed_out and failure.operation == "read"
    assert "rdzv backend 'memory' at memory" in str(failure) and "key 'state'" in str(failure)
    assert "gave up after" in str(failure)


def test_add_is_not_retried_when_the_outcome_is_unknown() -> None:
    inner = memory()
    faulty = FaultyStore(inner, every=1, operations=("add",))
    guarded = GuardedStore(faulty, "memory", read_timeout=5)
    with pytest.raises(StoreFailure, match="outcome is unknown") as info:
        guarded.add("n", 1)
    assert info.value.outcome_unknown
    assert faulty.injected_before == 1 and inner.read("n") is None  # not sent: nothing applied


class Refusing(MemoryStateStore):
    calls = 0

    def add(self, key: str, amount: int) -> int:
        Refusing.calls += 1
        if Refusing.calls < 3:
            raise ConnectionRefusedError("server restarting")
        return super().add(key, amount)


def test_add_is_retried_when_nothing_was_sent() -> None:
    guarded = GuardedStore(Refusing(MemorySpace(), "r"), "memory", read_timeout=10)
    assert guarded.add("n", 4) == 4


class Rejecting(MemoryStateStore):
    client_errors = (PermissionError,)

    def read(self, key: str):  # type: ignore[no-untyped-def]
        raise PermissionError("WRONGPASS invalid username-password pair")


def test_permanent_client_errors_fail_fast() -> None:
    guarded = GuardedStore(Rejecting(MemorySpace(), "r"), "memory", read_timeout=30)
    started = time.monotonic()
    with pytest.raises(StoreFailure, match="PermissionError: WRONGPASS") as info:
        guarded.read("k")
    assert time.monotonic() - started < 1 and not info.value.timed_out


def test_programming_errors_are_not_disguised() -> None:
    class Buggy(MemoryStateStore):
        def read(self, key: str):  # type: ignore[no-untyped-def]
            raise KeyError("bug")

    with pytest.raises(KeyError):
        GuardedStore(Buggy(MemorySpace(), "r"), "memory", read_timeout=5).read("k")


def test_lost_cas_reply_is_settled_as_applied_exactly_once() -> None:
    inner = memory()
    created = inner.cas("k", None, b"v1")
    faulty = FaultyStore(inner, every=1, operations=("cas",))  # 1st call: fault after applying
    faulty._counter = iter(range(2, 100))  # make the first cas an "after" fault
    guarded = GuardedStore(faulty, "memory", read_timeout=5)
    result = guarded.cas("k", created.token, b"v2", landed=lambda cur: cur is not None and cur.value == b"v2")
    assert result.applied and inner.read("k").value == b"v2"
    assert faulty.injected_after == 1
