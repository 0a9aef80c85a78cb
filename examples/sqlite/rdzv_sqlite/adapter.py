"""The SQLite adapter: rdzv's primitives over one SQLite database file.

For agents on one host, or on hosts that share a filesystem
(``journal_mode=delete`` there). Every run's keys are rows of one table,
``(run, key)`` the primary key; a store-wide counter hands out versions, so a
version token is never reused, not even after a delete. TTLs are wall-clock
expiry times (``time.time()``), which the processes of one host share; hosts
on a shared filesystem need synchronised clocks for them. ``wait`` and
``wait_read`` are the base class's polling fallbacks: SQLite cannot notify
another process.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Sequence

from rdzv_core.adapter import CONTRACT_VERSION, Capabilities, CasResult, StateStore, Token, Versioned
from rdzv_sqlite.settings import CONF_KEYS, SqliteSettings, parse_settings

if TYPE_CHECKING:  # pragma: no cover
    import sqlite3

    from torch.distributed.elastic.rendezvous import RendezvousParameters

    from rdzv_core.settings import CoreSettings
    from rdzv_sqlite.database import Database

#: A row that exists and has not expired (``?`` is the current time).
LIVE = "(expires IS NULL OR expires > ?)"
#: Keys per ``IN (...)`` query of ``read_many`` (well below SQLite's variable limit).
CHUNK = 500


def next_version(db: sqlite3.Connection) -> int:
    """A new store-wide version (inside a write transaction)."""
    db.execute("UPDATE rdzv_version SET last = last + 1 WHERE id = 0")
    return int(db.execute("SELECT last FROM rdzv_version WHERE id = 0").fetchone()[0])


class SqliteStateStore(StateStore):
    """rdzv adapter over a SQLite file (``--rdzv-endpoint=/path/to/rdzv.db``)."""

    name = "sqlite"
    contract_version = CONTRACT_VERSION
    conf_keys = CONF_KEYS
    #: wait and wait_read stay the base class's polling fallbacks.
    capabilities = Capabilities(read_many=True, list_keys=True, run_ids=True, purge=True, ttl=True)

    def __init__(self, database: Database, settings: SqliteSettings) -> None:
        import sqlite3

        from rdzv_sqlite.database import SqliteBusyError, SqliteOpenError

        self._db = database
        self._run = settings.run_id
        self._settings = settings
        self.retryable_errors = (SqliteBusyError,)
        # A busy database rolled the transaction back: an add may be sent again.
        self.unsent_errors = (SqliteBusyError,)
        self.client_errors = (sqlite3.Error, SqliteOpenError)

    @classmethod
    def from_params(cls, params: RendezvousParameters, core: CoreSettings) -> SqliteStateStore:
        """Open (creating it if needed) the database file the endpoint names."""
        from rdzv_sqlite.database import Database

        settings = parse_settings(core)
        return cls(Database(settings.path, settings.busy_timeout, settings.journal_mode), settings)

    @property
    def endpoint(self) -> str:
        """See base class."""
        return f"sqlite {self._settings.path}"

    def close(self) -> None:
        """See base class."""
        self._db.close()

    def after_fork(self) -> None:
        """A connection of the child's own (SQLite's must not cross a fork)."""
        self._db.reopen()

    # -- primitives ---------------------------------------------------------------

    def _live_row(self, db: sqlite3.Connection, key: str) -> tuple[bytes, int] | None:
        row = db.execute(f"SELECT value, version FROM rdzv_kv WHERE run = ? AND key = ? AND {LIVE}",
                         (self._run, key, time.time())).fetchone()
        return None if row is None else (bytes(row[0]), int(row[1]))

    def _put(self, db: sqlite3.Connection, key: str, value: bytes, ttl: float | None = None) -> int:
        version = next_version(db)
        expires = None if ttl is None else time.time() + ttl
        db.execute("INSERT OR REPLACE INTO rdzv_kv (run, key, value, version, expires) VALUES (?, ?, ?, ?, ?)",
                   (self._run, key, value, version, expires))
        return version

    def read(self, key: str) -> Versioned | None:
        """See base class."""
        row = self._db.read(lambda db: self._live_row(db, key))
        return None if row is None else Versioned(*row)

    def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """See base class: one query per :data:`CHUNK` keys."""
        wanted = list(keys)

        def body(db: sqlite3.Connection) -> dict[str, bytes]:
            found: dict[str, bytes] = {}
            now = time.time()
            for start in range(0, len(wanted), CHUNK):
                chunk = wanted[start:start + CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows = db.execute(f"SELECT key, value FROM rdzv_kv WHERE run = ? AND key IN ({marks}) AND {LIVE}",
                                  (self._run, *chunk, now))
                found.update((key, bytes(value)) for key, value in rows)
            return found

        found = self._db.read(body)
        return [found.get(key) for key in wanted]

    def cas(self, key: str, token: Token | None, value: bytes) -> CasResult:
        """See base class: read and replace in one write transaction."""

        def body(db: sqlite3.Connection) -> CasResult:
            row = self._live_row(db, key)
            if row is None:
                if token is not None:
                    return CasResult(None, None, False)
            elif token is None or row[1] != token:
                return CasResult(row[0], row[1], False)
            return CasResult(value, self._put(db, key, value), True)

        return self._db.transaction(body)

    def write(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """See base class; with ``ttl`` the row expires after that many seconds."""
        self._db.transaction(lambda db: self._put(db, key, value, ttl))

    def add(self, key: str, amount: int) -> int:
        """See base class. Exactly once: the transaction is applied whole or not at all."""

        def body(db: sqlite3.Connection) -> int:
            row = self._live_row(db, key)
            total = (int(row[0]) if row is not None else 0) + amount
            self._put(db, key, str(total).encode())
            return total

        return self._db.transaction(body)

    def delete(self, key: str) -> bool:
        """See base class (an expired row is deleted too, but did not exist)."""

        def body(db: sqlite3.Connection) -> bool:
            existed = self._live_row(db, key) is not None
            db.execute("DELETE FROM rdzv_kv WHERE run = ? AND key = ?", (self._run, key))
            return existed

        return self._db.transaction(body)

    def count(self, prefix: str) -> int:
        """See base class."""
        query = f"SELECT COUNT(*) FROM rdzv_kv WHERE run = ? AND substr(key, 1, ?) = ? AND {LIVE}"
        return int(self._db.read(lambda db: db.execute(query, (self._run, len(prefix), prefix, time.time())).fetchone()[0]))

    # -- administration (rdzv runs / purge) ---------------------------------------

    def list_keys(self, prefix: str = "") -> list[str]:
        """See base class."""
        query = f"SELECT key FROM rdzv_kv WHERE run = ? AND substr(key, 1, ?) = ? AND {LIVE} ORDER BY key"
        rows = self._db.read(lambda db: db.execute(query, (self._run, len(prefix), prefix, time.time())).fetchall())
        return [key for (key,) in rows]

    def run_ids(self) -> list[str]:
        """See base class."""
        rows = self._db.read(lambda db: db.execute(
            f"SELECT DISTINCT run FROM rdzv_kv WHERE {LIVE} ORDER BY run", (time.time(),)).fetchall())
        return [run for (run,) in rows]

    def purge(self) -> int:
        """See base class: every row of this run, in one transaction."""
        return self._db.transaction(
            lambda db: db.execute("DELETE FROM rdzv_kv WHERE run = ?", (self._run,)).rowcount)
