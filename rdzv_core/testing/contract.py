"""Conformance: the adapter primitives and torch's fencing-token contract."""

from __future__ import annotations

import threading
import time

import pytest
from torch.distributed.elastic.rendezvous import RendezvousStateError

from rdzv_core.adapter import capability_problems, contract_problem
from rdzv_core.backend import STATE_KEY, RdzvBackend
from rdzv_core.codec import FrameCodec, new_nonce
from rdzv_core.guarded import GuardedStore
from rdzv_core.handler import create_backend
from rdzv_core.testing.harness import AdapterHarness


def make_backend(harness: AdapterHarness, run_id: str, **conf: object) -> RdzvBackend:
    """A RendezvousBackend for ``run_id`` built the way torch's handler gets it."""
    backend, _store = create_backend(harness.params(run_id, **conf), harness.registry())
    return backend


class PrimitiveTests:
    """The adapter's own primitives, straight against the store."""

    def test_declares_its_contract_version_and_capabilities(self, harness: AdapterHarness) -> None:
        # What the core checks when the plugin loads (rdzv backends shows it).
        cls = harness.adapter_class
        assert contract_problem(cls.contract_version) is None, f"{cls.__name__} {contract_problem(cls.contract_version)}"
        assert capability_problems(cls) == []

    def test_read_of_a_missing_key_is_none(self, harness: AdapterHarness) -> None:
        assert harness.adapter(harness.new_run_id()).read("nothing-here") is None

    def test_write_then_read_returns_the_bytes(self, harness: AdapterHarness) -> None:
        adapter = harness.adapter(harness.new_run_id())
        adapter.write("k", b"\x00\xffbinary")
        found = adapter.read("k")
        assert found is not None and found.value == b"\x00\xffbinary"

    def test_cas_create_then_replace_with_token(self, harness: AdapterHarness) -> None:
        adapter = harness.adapter(harness.new_run_id())
        created = adapter.cas("k", None, b"one")
        assert created.applied and created.value == b"one"
        again = adapter.cas("k", None, b"other")
        assert not again.applied and again.value == b"one"
        replaced = adapter.cas("k", created.token, b"two")
        assert replaced.applied and adapter.read("k").value == b"two"
        stale = adapter.cas("k", created.token, b"three")
        assert not stale.applied and stale.value == b"two" and stale.token == replaced.token

    def test_cas_on_a_deleted_key_reports_it_missing(self, harness: AdapterHarness) -> None:
        adapter = harness.adapter(harness.new_run_id())
        token = adapter.cas("k", None, b"one").token
        assert adapter.delete("k") is True
        assert adapter.delete("k") is False
        result = adapter.cas("k", token, b"two")
        assert not result.applied and result.value is None
        assert adapter.read("k") is None

    def test_add_counts_and_reads_back_as_ascii(self, harness: AdapterHarness) -> None:
        adapter = harness.adapter(harness.new_run_id())
        assert adapter.add("n", 5) == 5
        assert adapter.add("n", -2) == 3
        assert adapter.read("n").value == b"3"

    def test_increment_counts_from_one_and_reads_back_as_ascii(self, harness: AdapterHarness) -> None:
        run = harness.new_run_id()
        adapter, other = harness.adapter(run), harness.adapter(run)
        assert [adapter.increment("t"), other.increment("t"), adapter.increment("t")] == [1, 2, 3]
        assert other.read("t").value == b"3"
        assert other.read_many(["t", "missing"]) == [b"3", None]

    def test_wait_read_of_an_incremented_counter(self, harness: AdapterHarness) -> None:
        run = harness.new_run_id()
        waiter, writer = harness.adapter(run), harness.adapter(run)
        writer.increment("tickets")
        timer = threading.Timer(0.2, lambda: writer.increment("tickets"))
        timer.start()
        try:
            assert waiter.wait_read("tickets", 30.0) in (b"1", b"2")
            assert waiter.wait(["tickets"], 0.0)
        finally:
            timer.join()
        assert waiter.read("tickets").value == b"2"

    def test_read_many_and_wait_of_more_keys_than_a_transaction_holds(self, harness: AdapterHarness) -> None:
        """A sealer waits on every slot of a round: hundreds of keys (etcd
        refuses transactions of more than 128 operations by default)."""
        run = harness.new_run_id()
        waiter, writer = harness.adapter(run), harness.adapter(run)
        names = [f"many/{i}" for i in range(300)]
        for name in names[:-1]:
            writer.write(name, name.encode())
        assert waiter.wait(names, 0.0) is False
        timer = threading.Timer(0.3, lambda: writer.write(names[-1], b"last"))
        timer.start()
        try:
            assert waiter.wait(names, 30.0) is True
        finally:
            timer.join()
        assert waiter.read_many(names) == [n.encode() for n in names[:-1]] + [b"last"]

    def test_count_sees_only_the_prefix_of_this_run(self, harness: AdapterHarness) -> None:
        run = harness.new_run_id()
        adapter, other_run = harness.adapter(run), harness.adapter(harness.new_run_id())
        for i in range(3):
            adapter.write(f"p/{i}", b"x")
        adapter.write("q/0", b"x")
        other_run.write("p/9", b"x")
        assert adapter.count("p/") == 3
        assert other_run.count("p/") == 1

    def test_wait_wakes_when_another_client_writes(self, harness: AdapterHarness) -> None:
        run = harness.new_run_id()
        waiter, writer = harness.adapter(run), harness.adapter(run)
        timer = threading.Timer(0.2, lambda: writer.write("late", b"1"))
        timer.start()
        try:
            assert waiter.wait(["late"], 30.0) is True
        finally:
            timer.join()

    def test_wait_times_out_with_false(self, harness: AdapterHarness) -> None:
        adapter = harness.adapter(harness.new_run_id())
        started = time.monotonic()
        assert adapter.wait(["never"], 0.3) is False
        assert time.monotonic() - started < 10

    def test_wait_with_zero_timeout_checks_once(self, harness: AdapterHarness) -> None:
        adapter = harness.adapter(harness.new_run_id())
        adapter.write("here", b"1")
        assert adapter.wait(["here"], 0.0) is True
        assert adapter.wait(["here", "absent"], 0.0) is False
        assert adapter.wait(["absent"], 0.0) is False

    def test_wait_is_not_ended_by_reads_of_the_missing_key(self, harness: AdapterHarness) -> None:
        # TCPStore wakes a key's waiters when compare_set touches the missing
        # key; a wait must still return True only once the key exists.
        run = harness.new_run_id()
        waiter, reader = harness.adapter(run), harness.adapter(run)
        result: list[bool] = []
        thread = threading.Thread(target=lambda: result.append(waiter.wait(["pending"], 1.5)))
        thread.start()
        try:
            for _ in range(20):
                assert reader.read("pending") is None
                assert reader.read_many(["pending"]) == [None]
                time.sleep(0.02)
        finally:
            thread.join()
        assert result == [False]

    def test_wait_read_returns_the_value_another_client_writes(self, harness: AdapterHarness) -> None:
        run = harness.new_run_id()
        waiter, writer = harness.adapter(run), harness.adapter(run)
        timer = threading.Timer(0.2, lambda: writer.cas("sealed", None, b"\x00seal\xff" * 3))
        timer.start()
        try:
            assert waiter.wait_read("sealed", 30.0) == b"\x00seal\xff" * 3
        finally:
            timer.join()
        # A waiter of a key that is there already gets it at once, also with no time to wait.
        assert waiter.wait_read("sealed", 30.0) == b"\x00seal\xff" * 3
        assert waiter.wait_read("sealed", 0.0) == b"\x00seal\xff" * 3

    def test_wait_read_of_a_counter_and_of_an_empty_value(self, harness: AdapterHarness) -> None:
        run = harness.new_run_id()
        waiter, writer = harness.adapter(run), harness.adapter(run)
        for key, write, expected in (("tickets", lambda: writer.add("tickets", 3), b"3"),
                                     ("empty", lambda: writer.write("empty", b""), b"")):
            timer = threading.Timer(0.2, write)
            timer.start()
            try:
                assert waiter.wait_read(key, 30.0) == expected
            finally:
                timer.join()

    def test_wait_read_times_out_with_none(self, harness: AdapterHarness) -> None:
        adapter = harness.adapter(harness.new_run_id())
        started = time.monotonic()
        assert adapter.wait_read("never", 0.3) is None
        assert adapter.wait_read("never", 0.0) is None
        assert time.monotonic() - started < 10
        timer = threading.Timer(0.1, lambda: adapter.write("other", b"1"))
        timer.start()  # a write of another key during the wait does not end it
        try:
            assert adapter.wait_read("never", 0.5) is None
        finally:
            timer.join()

    def test_write_with_ttl_expires_where_supported(self, harness: AdapterHarness) -> None:
        adapter = harness.adapter(harness.new_run_id())
        if not adapter.capabilities.ttl:
            pytest.skip(f"{type(adapter).__name__} does not declare Capabilities(ttl=True)")
        adapter.write("lease", b"1", ttl=1.0)
        assert adapter.read("lease") is not None
        deadline = time.monotonic() + 10
        while adapter.read("lease") is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert adapter.read("lease") is None


class FencingTests:
    """torch's RendezvousBackend contract (get_state/set_state with tokens)."""

    def test_fresh_state_is_none(self, harness: AdapterHarness) -> None:
        assert make_backend(harness, harness.new_run_id()).get_state() is None

    def test_create_without_token(self, harness: AdapterHarness) -> None:
        backend = make_backend(harness, harness.new_run_id())
        state, token, applied = backend.set_state(b"first")
        assert (state, applied) == (b"first", True) and token is not None
        assert backend.get_state()[0] == b"first"

    def test_create_loses_to_an_existing_state(self, harness: AdapterHarness) -> None:
        run = harness.new_run_id()
        make_backend(harness, run).set_state(b"first")
        state, _token, applied = make_backend(harness, run).set_state(b"second")
        assert (state, applied) == (b"first", False)

    def test_set_with_current_token_applies(self, harness: AdapterHarness) -> None:
        backend = make_backend(harness, harness.new_run_id())
        _, token, _ = backend.set_state(b"v1")
        state, new_token, applied = backend.set_state(b"v2", token)
        assert (state, applied) == (b"v2", True)
        assert backend.get_state()[0] == b"v2"
        assert backend.set_state(b"v3", new_token)[2] is True

    def test_set_with_old_token_returns_current_state(self, harness: AdapterHarness) -> None:
        run = harness.new_run_id()
        a, b = make_backend(harness, run), make_backend(harness, run)
        _, token, _ = a.set_state(b"v1")
        assert b.set_state(b"v2-from-b", b.get_state()[1])[2] is True
        state, _, applied = a.set_state(b"v2-from-a", token)
        assert (state, applied) == (b"v2-from-b", False)

    def test_set_with_token_on_missing_state_returns_none(self, harness: AdapterHarness) -> None:
        run = harness.new_run_id()
        backend = make_backend(harness, run)
        _, token, _ = backend.set_state(b"v1")
        harness.adapter(run).delete(STATE_KEY)
        assert backend.set_state(b"v2", token) is None

    @pytest.mark.parametrize("bad_token", [b"not-a-token", "string", 12345])
    def test_set_with_invalid_token_is_a_lost_race(self, harness: AdapterHarness, bad_token: object) -> None:
        backend = make_backend(harness, harness.new_run_id())
        backend.set_state(b"v1")
        state, _, applied = backend.set_state(b"v2", bad_token)
        assert (state, applied) == (b"v1", False)
        assert backend.get_state()[0] == b"v1"

    def test_identical_payloads_apply_once(self, harness: AdapterHarness) -> None:
        run = harness.new_run_id()
        a, b = make_backend(harness, run), make_backend(harness, run)
        _, token, _ = a.set_state(b"base")
        results = [a.set_state(b"same", token), b.set_state(b"same", token)]
        assert sorted(r[2] for r in results) == [False, True]

    @pytest.mark.parametrize("garbage", [b"", b"\x80\x04garbage", b"RZ\x01\x00" + b"\x00" * 20, b"not a frame at all" * 10])
    def test_corrupt_state_raises_state_error(self, harness: AdapterHarness, garbage: bytes) -> None:
        run = harness.new_run_id()
        harness.adapter(run).write(STATE_KEY, garbage)
        with pytest.raises(RendezvousStateError, match=STATE_KEY):
            make_backend(harness, run).get_state()

    def test_unsigned_state_is_rejected_when_a_secret_is_set(self, harness: AdapterHarness, tmp_path) -> None:  # type: ignore[no-untyped-def]
        run = harness.new_run_id()
        make_backend(harness, run).set_state(b"written without a secret")
        secret = tmp_path / "secret"
        secret.write_text("s3cret\n")
        with pytest.raises(RendezvousStateError, match="no signature"):
            make_backend(harness, run, secret_file=str(secret)).get_state()

    def test_forged_state_never_reaches_the_caller(self, harness: AdapterHarness, tmp_path) -> None:  # type: ignore[no-untyped-def]
        run = harness.new_run_id()
        secret = tmp_path / "secret"
        secret.write_text("the-real-secret")
        forged = FrameCodec(secret=b"attacker-guess").encode(b"cos\nsystem\n(S'echo pwned'\ntR.", new_nonce())
        harness.adapter(run).write(STATE_KEY, forged)
        with pytest.raises(RendezvousStateError, match="signature check failed"):
            make_backend(harness, run, secret_file=str(secret)).get_state()

    def test_signed_states_round_trip(self, harness: AdapterHarness, tmp_path) -> None:  # type: ignore[no-untyped-def]
        run = harness.new_run_id()
        secret = tmp_path / "secret"
        secret.write_text("shared")
        a = make_backend(harness, run, secret_file=str(secret))
        b = make_backend(harness, run, secret_file=str(secret))
        _, token, _ = a.set_state(b"x" * 5000)  # large enough to be compressed
        assert b.get_state()[0] == b"x" * 5000
        assert a.set_state(b"y", token)[2] is True


def guarded(harness: AdapterHarness, run_id: str) -> GuardedStore:
    """The core's view of a fresh adapter for ``run_id``."""
    return GuardedStore(harness.adapter(run_id), harness.backend, read_timeout=30.0)
