"""5. State size: what one write of the rendezvous state costs as N grows.

torch's handler pickles the whole state (participants, wait list, every
node's last heartbeat) and its c10d backend stores it base64-encoded; every
heartbeat rewrites the whole blob with ``compare_set``, which sends the old
blob (the expected value) and the new one and gets the current one back.
rdzv stores the same pickle in a frame (24-byte header plus up to 32
lineage nonces, LZ4 from 1 KiB). The states are torch's own
objects with distinct host names per node (see :mod:`benchmarks.payloads`).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Sequence

from benchmarks.payloads import state_bytes


@dataclass
class SizeRow:
    """Sizes of one state of ``nodes`` nodes."""

    nodes: int
    pickle_bytes: int
    torch_blob: int  # base64, as torch's c10d backend stores it
    rdzv_frame: int  # the frame rdzv stores (after a first write, with lineage)
    encode_us: float
    decode_us: float

    @property
    def torch_write_wire(self) -> int:
        """torch c10d heartbeat write: old blob + new blob sent, blob returned."""
        return 3 * self.torch_blob

    @property
    def rdzv_c10d_write_wire(self) -> int:
        """rdzv on c10d: same compare_set shape, with frames."""
        return 3 * self.rdzv_frame

    @property
    def rdzv_kv_write_wire(self) -> int:
        """rdzv on Redis/etcd: the frame sent, a version number back."""
        return self.rdzv_frame + 8

    @property
    def ratio(self) -> float:
        """rdzv frame / torch blob."""
        return self.rdzv_frame / self.torch_blob


def _timed(call, repeat: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - start) / repeat * 1e6


def measure(ns: Sequence[int], repeat: int = 50) -> list[SizeRow]:
    """Sizes and codec cost for every N."""
    from rdzv_core.codec import FrameCodec, new_nonce

    codec = FrameCodec()
    rows = []
    for n in ns:
        payload = state_bytes(n)
        first = codec.decode(codec.encode(payload, new_nonce()))
        frame = codec.encode(payload, new_nonce(), first)  # a steady-state frame carries lineage
        rows.append(SizeRow(
            n, len(payload), len(base64.b64encode(payload)), len(frame),
            _timed(lambda: codec.encode(payload, new_nonce(), first), repeat),
            _timed(lambda: codec.decode(frame), repeat),
        ))
    return rows
