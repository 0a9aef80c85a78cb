"""The sqlite adapter: rdzv's primitives over sqlite.

Every method below that raises ``NotImplementedError`` is a primitive still
to write; its message says what it must do (the full contract is
``rdzv_core.adapter.StateStore``). Keys are relative to one run: map them into
a namespace of ``params.run_id`` so that runs never see each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rdzv_core.adapter import CasResult, StateStore, Token, Versioned

if TYPE_CHECKING:  # pragma: no cover
    from torch.distributed.elastic.rendezvous import RendezvousParameters


def not_written(primitive: str, duty: str) -> NotImplementedError:
    """The error of a primitive that is not written yet."""
    return NotImplementedError(f"rdzv-sqlite: {primitive} is not written yet: it must {duty}")


class SqliteStateStore(StateStore):
    """rdzv adapter over sqlite."""

    name = "sqlite"
    #: Your --rdzv-conf keys (the core rejects every other key that is not its own or torch's).
    conf_keys = frozenset()
    #: True only once write(..., ttl=...) really expires keys.
    supports_ttl = False

    def __init__(self, endpoint: str, run_id: str) -> None:
        self._endpoint = endpoint
        self._prefix = f"{run_id}/"
        # Once the client library is imported: its transient error types
        # (connection reset, timeout) and all its error types.
        self.retryable_errors = ()
        self.client_errors = ()

    @classmethod
    def from_params(cls, params: RendezvousParameters) -> SqliteStateStore:
        """Parse the endpoint and your conf keys, import the client, connect.
        Bad input: raise ValueError naming the key or the endpoint."""
        endpoint = (params.endpoint or "").strip()
        if not endpoint:
            raise ValueError("no endpoint given (--rdzv-endpoint is empty)")
        return cls(endpoint, params.run_id)

    @property
    def endpoint(self) -> str:
        """Where the store is, for error messages."""
        return f"sqlite {self._endpoint}"

    def read(self, key: str) -> Versioned | None:
        raise not_written("read(key)", "return Versioned(value, token) of the run's key, or None when it is missing")

    def cas(self, key: str, token: Token | None, value: bytes) -> CasResult:
        raise not_written(
            "cas(key, token, value)",
            "atomically replace the key if its version is still token (token None: create it only if absent) and "
            "return CasResult(value, new_token, True), else CasResult(current value, its token, False), "
            "or CasResult(None, None, False) for a missing key",
        )

    def write(self, key: str, value: bytes, ttl: float | None = None) -> None:
        raise not_written("write(key, value, ttl)", "set the key unconditionally (with a new version token)")

    def add(self, key: str, amount: int) -> int:
        raise not_written(
            "add(key, amount)",
            "atomically add amount to the counter at key (missing = 0), store it as ASCII digits and return the "
            "new value",
        )

    def delete(self, key: str) -> bool:
        raise not_written("delete(key)", "delete the key and return whether it existed")

    def count(self, prefix: str) -> int:
        raise not_written("count(prefix)", "return how many keys of this run start with prefix")
