"""torch's ``RendezvousBackend`` over any adapter.

torch's ``DynamicRendezvousHandler`` keeps the whole rendezvous in one pickled
blob that every node reads and CASes. This backend stores that blob as one
framed value (see :mod:`rdzv_core.codec`) and hands torch a small fencing
token that wraps the adapter's version token and the frame's identity.
"""

from __future__ import annotations

import random
import time
from typing import NamedTuple

from torch.distributed.elastic.rendezvous import (
    RendezvousConnectionError,
    RendezvousStateError,
    RendezvousTimeoutError,
)
from torch.distributed.elastic.rendezvous.dynamic_rendezvous import RendezvousBackend

from rdzv_core.adapter import Token, Versioned
from rdzv_core.codec import Frame, FrameCodec, FrameError, new_nonce
from rdzv_core.guarded import GuardedStore, StoreFailure

#: The adapter key (relative to the run's namespace) of torch's state blob.
STATE_KEY = "state"


class FenceToken(NamedTuple):
    """What torch holds between ``get_state`` and ``set_state``."""

    version: Token
    frame: Frame


def rendezvous_error(failure: StoreFailure) -> Exception:
    """Map a store failure to torch's rendezvous-side error type."""
    if failure.timed_out:
        return RendezvousTimeoutError(str(failure))
    return RendezvousConnectionError(str(failure))


class RdzvBackend(RendezvousBackend):
    """A ``RendezvousBackend`` that keeps torch's state in any rdzv adapter.

    ``name`` is whatever the user passed to ``--rdzv-backend`` (torch's
    ``create_handler`` insists the two match). ``cas_backoff_ms`` > 0 delays
    the return of a lost ``set_state`` by a random time scaled by how many
    races this backend lost in a row, to thin out contention.

    The backend remembers the last frame it wrote or decoded, with its bytes:
    torch's handler re-reads an unchanged state far more often than the state
    changes (every node polls it while a round fills up), and a value
    byte-for-byte equal to one already checked needs no second CRC, MAC or
    decompression.
    """

    def __init__(
        self,
        store: GuardedStore,
        name: str,
        codec: FrameCodec,
        cas_backoff_ms: float = 0.0,
        key: str = STATE_KEY,
    ) -> None:
        self._store = store
        self._name = name
        self._codec = codec
        self._key = key
        self._cas_backoff = cas_backoff_ms / 1000.0
        self._lost_in_row = 0
        # (bytes, frame) of the last frame written or decoded; replaced as a
        # whole, so threads sharing the backend always see a matching pair.
        self._last: tuple[bytes | None, Frame | None] = (None, None)

    @property
    def name(self) -> str:
        """See base class."""
        return self._name

    def _frame(self, data: bytes) -> Frame:
        """The frame in ``data``: remembered if seen last, else decoded and checked."""
        known, frame = self._last
        if data == known and frame is not None:
            return frame
        try:
            frame = self._codec.decode(data)
        except FrameError as exc:
            raise RendezvousStateError(
                f"rdzv backend '{self._name}' at {self._store.adapter.endpoint}: the rendezvous state "
                f"under key '{self._key}' is unusable: {exc}"
            ) from exc
        self._last = (data, frame)
        return frame

    def get_state(self) -> tuple[bytes, Token] | None:
        """See base class."""
        try:
            found = self._store.read(self._key)
        except StoreFailure as failure:
            raise rendezvous_error(failure) from failure
        if found is None:
            return None
        value = found.value
        frame = self._frame(value)
        return frame.payload, FenceToken(found.token, frame)

    def _landed(self, nonce: bytes, current: Versioned | None) -> bool:
        """Whether ``current`` proves that the write with ``nonce`` was applied."""
        if current is None:
            return False
        try:
            return self._codec.decode(current.value).descends_from(nonce)
        except FrameError:
            return False

    def set_state(self, state: bytes, token: Token | None = None) -> tuple[bytes, Token, bool] | None:
        """See base class."""
        if token is None:
            version = parent = None
        elif isinstance(token, FenceToken):
            version, parent = token.version, token.frame
        else:
            # Not one of ours (torch only hands back what we gave it): treat as
            # stale, as torch's own backends do, and report the current state.
            current = self.get_state()
            return None if current is None else (*current, False)
        nonce = new_nonce()
        value, frame = self._codec.encode_with_frame(state, nonce, parent)
        try:
            result = self._store.cas(self._key, version, value, lambda current: self._landed(nonce, current))
        except StoreFailure as failure:
            raise rendezvous_error(failure) from failure
        if result.applied and result.value == value:  # mostly our own object: an identity check
            self._last = (value, frame)
            self._lost_in_row = 0
            return state, FenceToken(result.token, frame), True
        if result.value is None:
            return None
        current = self._frame(result.value)
        fence = FenceToken(result.token, current)
        if result.applied:
            # Our write landed but was already built upon (settled after a lost reply).
            self._lost_in_row = 0
            return current.payload, fence, True
        if self._cas_backoff > 0:
            self._back_off_after_loss()
            fresh = self.get_state()
            if fresh is None:
                return None
            return (*fresh, False)
        return current.payload, fence, False

    def _back_off_after_loss(self) -> None:
        """Sleep a random time that grows with the races lost in a row."""
        self._lost_in_row += 1
        ceiling = self._cas_backoff * min(self._lost_in_row, 16)
        time.sleep(random.uniform(0, ceiling))
