"""What the SQLite adapter takes from the core's parsed settings.

The one place that knows how the core hands settings to an adapter
(:class:`~rdzv_core.settings.CoreSettings`, parsed once by the core): the
rest of the adapter sees only :class:`SqliteSettings`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from rdzv_core.settings import CoreSettings

#: ``journal_mode`` values: ``wal`` (default) for agents on one host, where
#: readers never wait for a writer; ``delete`` for a file on a shared
#: (network) filesystem, where WAL's shared memory does not work.
JOURNAL_MODES = ("wal", "delete")
#: Tries of a call on a locked database within one ``read_timeout``.
BUSY_TRIES = 4
#: This adapter's own ``--rdzv-conf`` keys.
CONF_KEYS = frozenset({"journal_mode"})


@dataclass(frozen=True)
class SqliteSettings:
    """The validated settings of one adapter instance."""

    path: str  # absolute path of the database file
    run_id: str
    read_timeout: float
    journal_mode: str

    @property
    def busy_timeout(self) -> float:
        """How long one call waits for another process's write lock: a quarter
        of ``read_timeout``, so that the core can try again (with backoff)
        within the operation's deadline."""
        return self.read_timeout / BUSY_TRIES


def parse_settings(core: CoreSettings) -> SqliteSettings:
    """This adapter's settings from the core's; ``ValueError`` naming the
    endpoint or key if bad."""
    path = (core.endpoint or "").strip()
    if not path:
        raise ValueError("no endpoint given: --rdzv-endpoint is the path of the SQLite file, e.g. /shared/rdzv.db")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"endpoint '{path}': the folder '{folder}' does not exist")
    if os.path.isdir(path):
        raise ValueError(f"endpoint '{path}' is a folder: give the path of the database file in it")
    return SqliteSettings(
        path=os.path.abspath(path),
        run_id=core.run_id,
        read_timeout=core.read_timeout,
        journal_mode=core.conf.choice("journal_mode", JOURNAL_MODES, "wal"),
    )
