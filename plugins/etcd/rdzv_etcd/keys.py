"""Where a run's keys live in etcd's flat keyspace.

Every key of a run sits under ``{key_prefix}/{run_id}/``:

* ``{key_prefix}/{run_id}/k/{key}`` holds the adapter's keys (torch's state
  blob ``k/state``, the Store bridge's ``k/kv/...``);
* ``{key_prefix}/{run_id}/r/{nonce}`` holds short-lived receipts that make
  ``add`` safe to retry (see :mod:`rdzv_etcd.adapter`).

The run id is percent-encoded where it could break the layout (``/``,
``%``, control characters), so no run can see into another run's keys and
``etcdctl del --prefix {key_prefix}/{run_id}/`` removes exactly one run.
"""

from __future__ import annotations

from urllib.parse import quote


def prefix_range_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with ``prefix``.

    etcd ranges are ``[key, range_end)``; ``b"\\0"`` means "to the end of the
    keyspace" (only reached when ``prefix`` is all ``0xff`` bytes).
    """
    trimmed = bytearray(prefix)
    while trimmed and trimmed[-1] == 0xFF:
        trimmed.pop()
    if not trimmed:
        return b"\0"
    trimmed[-1] += 1
    return bytes(trimmed)


class KeySpace:
    """Maps one run's relative keys to absolute etcd keys."""

    def __init__(self, key_prefix: str, run_id: str) -> None:
        self.root = f"{key_prefix}/{quote(run_id, safe=':@+=')}/".encode()
        self.data = self.root + b"k/"
        self.receipts = self.root + b"r/"

    def key(self, key: str) -> bytes:
        """The etcd key of the adapter key ``key``."""
        return self.data + key.encode()

    def receipt(self, nonce: str) -> bytes:
        """The etcd key of an ``add`` receipt."""
        return self.receipts + nonce.encode()

    def __str__(self) -> str:
        return self.root.decode(errors="replace")
