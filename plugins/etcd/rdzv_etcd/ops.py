"""Client-neutral descriptions of etcd requests and their results.

The adapter builds transactions out of these small value types; only
:mod:`rdzv_etcd.client` turns them into protobuf messages. Replacing the
client library therefore touches one module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key as etcd stores it."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int = 0
    version: int = 0  # how many puts since the key was created

    @classmethod
    def of(cls, message: Any) -> KeyValue:
        """The key of an etcd ``mvccpb.KeyValue`` message."""
        return cls(message.key, message.value, message.create_revision, message.mod_revision, message.lease,
                   message.version)


@dataclass(frozen=True, slots=True)
class RevisionIs:
    """Compare: the key's ``mod_revision`` (or ``create_revision`` with
    ``created=True``) equals ``revision``. ``create_revision == 0`` holds
    exactly when the key does not exist."""

    key: bytes
    revision: int
    created: bool = False


@dataclass(frozen=True, slots=True)
class Put:
    """Set ``key`` to ``value``, attached to ``lease`` (0 = none)."""

    key: bytes
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Get:
    """Read one key."""

    key: bytes


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete one key."""

    key: bytes


Op = Union[Put, Get, Delete]

#: The result of one op inside a transaction: a ``Get`` yields the key (or
#: ``None``), a ``Delete`` the number of keys deleted, a ``Put`` ``None``.
OpResult = Union[KeyValue, int, None]


@dataclass(frozen=True, slots=True)
class TxnResult:
    """The outcome of a transaction.

    ``revision`` is the store revision after it: when a ``Put`` was applied,
    the new ``mod_revision`` of the key it wrote.
    """

    succeeded: bool
    revision: int
    results: tuple[OpResult, ...]
