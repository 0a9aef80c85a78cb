"""One SQLite connection shared by an adapter's threads, and its transactions.

Every call holds the connection's lock (SQLite connections are not to be
used by two threads at once). Writes run in ``BEGIN IMMEDIATE`` transactions:
the file's write lock is taken up front, so two processes never deadlock
upgrading a read lock, and a writer that finds the file locked waits up to
the busy timeout. What SQLite reports as busy or locked after that is a
:class:`SqliteBusyError`: the transaction was rolled back, nothing of it was
applied, and the core may retry it (even an ``add``).
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Callable, TypeVar

from rdzv_core.errors import TransientStoreError

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS rdzv_kv (
    run TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    version INTEGER NOT NULL,
    expires REAL,
    PRIMARY KEY (run, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rdzv_version (id INTEGER PRIMARY KEY CHECK (id = 0), last INTEGER NOT NULL);
INSERT OR IGNORE INTO rdzv_version VALUES (0, 0);
"""


class SqliteBusyError(TransientStoreError):
    """Another process held the database past the busy timeout; nothing was applied."""


class SqliteOpenError(RuntimeError):
    """The database file cannot be opened or set up (permissions, not a database)."""


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` is SQLite's "database is locked/busy" (retrying may help)."""
    return isinstance(exc, sqlite3.OperationalError) and any(
        word in str(exc).lower() for word in ("locked", "busy"))


class Database:
    """A connection to the file at ``path`` with the rdzv tables in it."""

    def __init__(self, path: str, busy_timeout: float, journal_mode: str) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._journal_mode = journal_mode
        self._lock = threading.Lock()
        self._connection = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                                         check_same_thread=False)
            connection.execute(f"PRAGMA journal_mode={self._journal_mode}")
            connection.executescript(SCHEMA)
        except sqlite3.Error as exc:
            if is_busy(exc):
                raise SqliteBusyError(f"sqlite {self.path}: {exc}") from exc
            raise SqliteOpenError(f"sqlite {self.path}: cannot open the database: {exc}") from exc
        return connection

    def reopen(self) -> None:
        """A new connection (in a forked child: the parent's is left alone, never used)."""
        self._connection = self._open()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._connection.close()

    def read(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """``body(connection)`` outside a write transaction (a consistent read in WAL mode)."""
        with self._lock:
            try:
                return body(self._connection)
            except sqlite3.Error as exc:
                raise self._translated(exc) from exc

    def transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """``body(connection)`` in one write transaction: all of it applied, or none."""
        with self._lock:
            connection = self._connection
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._translated(exc) from exc
            try:
                result = body(connection)
                connection.execute("COMMIT")
            except BaseException as exc:
                if connection.in_transaction:  # some errors end the transaction themselves
                    connection.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._translated(exc) from exc
                raise
            return result

    def _translated(self, exc: sqlite3.Error) -> Exception:
        if is_busy(exc):
            return SqliteBusyError(f"sqlite {self.path}: {exc} (waited {self._busy_timeout:g} s)")
        return exc
