"""SQLite-specific behaviour beyond the conformance suite: a database another
process keeps locked, bad endpoints and keys."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from rdzv_core.errors import RdzvConfigError
from rdzv_core.handler import create_backend
from rdzv_core.testing import AdapterHarness
from rdzv_core.testing.proxy import timed_connect_failure
from rdzv_sqlite.adapter import SqliteStateStore
from rdzv_sqlite.database import SqliteBusyError


@pytest.fixture
def harness(tmp_path: Path) -> AdapterHarness:
    return AdapterHarness(SqliteStateStore, endpoint=str(tmp_path / "rdzv.db"), conf={"read_timeout": 0.5})


def lock_for_writing(path: str) -> sqlite3.Connection:
    """Another client holding the database's write lock (until it commits)."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_a_locked_database_is_busy_after_the_busy_timeout_and_nothing_is_applied(harness: AdapterHarness) -> None:
    store = harness.adapter(harness.new_run_id())
    assert store.add("n", 1) == 1
    other = lock_for_writing(harness.endpoint)
    try:
        with pytest.raises(SqliteBusyError, match="database is locked"):
            store.add("n", 1)
    finally:
        other.execute("COMMIT")
    assert store.read("n").value == b"1"
    assert store.add("n", 1) == 2


def test_the_core_sends_an_add_again_once_the_lock_is_gone(harness: AdapterHarness) -> None:
    """A busy add was rolled back (an unsent error): the core tries it again
    within read_timeout, and it counts once."""
    _backend, store = create_backend(harness.params(read_timeout=8), harness.registry())  # 2 s per try
    assert store.add("n", 1) == 1
    other = lock_for_writing(harness.endpoint)
    release = threading.Timer(3.0, lambda: other.execute("COMMIT"))  # during the second try
    release.start()
    try:
        assert store.add("n", 1) == 2
    finally:
        release.join()
    assert store.add("n", 1) == 3


@pytest.mark.parametrize(("endpoint", "conf", "expected"), [
    ("/nonexistent/folder/rdzv.db", {}, "endpoint '/nonexistent/folder/rdzv.db': the folder '/nonexistent/folder' "
                                        "does not exist"),
    ("", {}, "no endpoint given: --rdzv-endpoint is the path of the SQLite file"),
    ("{tmp}", {}, "is a folder: give the path of the database file in it"),
    ("{tmp}/rdzv.db", {"journal_mode": "memory"}, "--rdzv-conf journal_mode='memory' is invalid: expected one of "
                                                  "wal, delete"),
])
def test_bad_input_is_one_clear_error(tmp_path: Path, endpoint: str, conf: dict[str, str], expected: str) -> None:
    harness = AdapterHarness(SqliteStateStore, endpoint=endpoint.format(tmp=tmp_path), conf=conf)
    error, took = timed_connect_failure(harness)
    assert isinstance(error, RdzvConfigError), error
    assert str(error).startswith("rdzv backend 'rdzv-sqlite': ") and expected in str(error), error
    assert took < 10  # at once: no retries until connect_timeout


def test_a_file_that_is_not_a_database_fails_at_once(tmp_path: Path) -> None:
    from torch.distributed.elastic.rendezvous import RendezvousConnectionError

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a SQLite database, not even its header" * 100)
    error, took = timed_connect_failure(AdapterHarness(SqliteStateStore, endpoint=str(junk)))
    assert isinstance(error, RendezvousConnectionError), error
    assert f"sqlite {junk}: cannot open the database: file is not a database" in str(error), error
    assert took < 10 and "attempts to connect failed" not in str(error)
