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


def test_exists_checks_once_without_waiting() -> None:
    guarded = GuardedStore(memory(), "memory", read_timeout=5)
    guarded.write("here", b"1")
    started = time.monotonic()
    assert guarded.exists(["here"]) is True
    assert guarded.exists(["here", "absent"]) is False
    assert time.monotonic() - started < 1


def test_wait_read_retries_a_failed_read_after_a_short_wait() -> None:
    # The key is there; the read that follows the (default) wait fails once.
    # A wait of 10 ms must still get the value: the read has read_timeout.
    inner = memory()
    inner.write("seal", b"sealed")
    faulty = FaultyStore(inner, every=2, operations=("read",))
    assert faulty.read("seal") is not None  # read #1 passes; #2, the one after the wait, fails
    guarded = GuardedStore(faulty, "memory", read_timeout=5)
    assert guarded.wait_read("seal", 0.01) == b"sealed"
    assert faulty.injected_before == 1


def test_wait_read_times_out_with_none() -> None:
    guarded = GuardedStore(memory(), "memory", read_timeout=5)
    started = time.monotonic()
    assert guarded.wait_read("absent", 0.2) is None
    assert time.monotonic() - started < 2


class ForkAware(MemoryStateStore):
    forks = 0

    def after_fork(self) -> None:
        ForkAware.forks += 1


def test_a_forked_child_reconnects_before_its_first_call() -> None:
    import os

    guarded = GuardedStore(ForkAware(MemorySpace(), "r"), "memory", read_timeout=5)
    guarded.read("k")
    pid = os.fork()
    if pid == 0:  # child: report through the exit code, never return into pytest
        try:
            guarded.read("k")
            guarded.read("k")
            os._exit(0 if ForkAware.forks == 1 else 1)
        except BaseException:  # noqa: BLE001
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    guarded.read("k")
    assert ForkAware.forks == 0  # the parent keeps its connection


def test_the_deadline_counts_from_the_first_attempt() -> None:
    class Slow(MemoryStateStore):
        def read(self, key: str):  # type: ignore[no-untyped-def]
            time.sleep(0.4)
            raise ConnectionError("reset")

    # Counted from the first attempt: two attempts (0.8 s), then the 0.6 s are
    # over. Counted from the first failure it would take three (1.2 s).
    guarded = GuardedStore(Slow(MemorySpace(), "r"), "memory", read_timeout=0.6)
    started = time.monotonic()
    with pytest.raises(StoreFailure) as info:
        guarded.read("k")
    assert info.value.timed_out and time.monotonic() - started < 1.1
