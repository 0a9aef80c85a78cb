"""Framing of rendezvous state values.

A frame is::

    magic  b"RZ"           2 bytes
    version                1 byte   (FORMAT_VERSION)
    flags                  1 byte   (FLAG_ZLIB | FLAG_HMAC)
    nonce                  8 bytes  random, unique per write
    lineage count n        1 byte   (0..LINEAGE_DEPTH)
    lineage                8*n bytes nonces of the frames this one replaced,
                                    newest first
    crc32                  4 bytes  over every byte before it and the payload
    hmac-sha256            32 bytes only with FLAG_HMAC: over the same bytes
    payload                         the state, zlib-compressed with FLAG_ZLIB

The nonce and lineage let the core settle a write whose reply was lost: a
later reader finds our nonce either as the current frame's nonce or in its
lineage (the value was built on ours) and knows that our write landed. The
one case it cannot prove is more than ``LINEAGE_DEPTH`` (32) writes stacked
on ours between the lost reply and the read-back (one round trip); the
write is then reported as not applied, which torch's handler survives because
it re-applies its change to the fresh state, and its changes are idempotent.

With a secret configured, frames must carry a valid HMAC; anything else is
rejected *before* the payload reaches ``pickle`` in torch's handler.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import zlib
from dataclasses import dataclass

MAGIC = b"RZ"
FORMAT_VERSION = 1
FLAG_ZLIB = 0x01
FLAG_HMAC = 0x02
NONCE_SIZE = 8
LINEAGE_DEPTH = 32
MAC_SIZE = 32
DEFAULT_COMPRESS_THRESHOLD = 1024

_HEAD = struct.Struct("!2sBB8sB")


class FrameError(ValueError):
    """A value is not a valid frame (corrupt, foreign, or badly signed)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame: the payload and its write identity."""

    payload: bytes
    nonce: bytes
    lineage: tuple[bytes, ...]

    def descends_from(self, nonce: bytes) -> bool:
        """Whether ``nonce`` is this frame's own or one it replaced."""
        return nonce == self.nonce or nonce in self.lineage


def lineage_after(parent: Frame | None) -> tuple[bytes, ...]:
    """The lineage of a frame written on top of ``parent``."""
    if parent is None:
        return ()
    return (parent.nonce, *parent.lineage)[:LINEAGE_DEPTH]


def new_nonce() -> bytes:
    """Return a fresh random write identity."""
    return os.urandom(NONCE_SIZE)


class FrameCodec:
    """Encodes and decodes frames; holds the compression and signing policy."""

    def __init__(
        self,
        secret: bytes | None = None,
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
    ) -> None:
        if compress_threshold < 0:
            raise ValueError("compress_threshold must be >= 0")
        self._secret = secret or None
        self._compress_threshold = compress_threshold

    @property
    def signs(self) -> bool:
        """Whether frames are signed (a secret is configured)."""
        return self._secret is not None

    def encode(self, payload: bytes, nonce: bytes, parent: Frame | None = None) -> bytes:
        """Frame ``payload`` as the successor of ``parent`` (if any)."""
        flags = 0
        body = payload
        if self._compress_threshold and len(payload) >= self._compress_threshold:
            packed = zlib.compress(payload, 1)
            if len(packed) < len(payload):
                flags |= FLAG_ZLIB
                body = packed
        lineage = lineage_after(parent)
        if self._secret is not None:
            flags |= FLAG_HMAC
        head = _HEAD.pack(MAGIC, FORMAT_VERSION, flags, nonce, len(lineage)) + b"".join(lineage)
        crc = zlib.crc32(body, zlib.crc32(head)).to_bytes(4, "big")
        mac = b""
        if self._secret is not None:
            mac = hmac.new(self._secret, head + body, hashlib.sha256).digest()
        return head + crc + mac + body

    def decode(self, data: bytes) -> Frame:
        """Check and unpack a frame; raise :class:`FrameError` saying why not."""
        if len(data) < _HEAD.size + 4:
            raise FrameError(f"value is too short to be an rdzv frame ({len(data)} bytes)")
        magic, version, flags, nonce, count = _HEAD.unpack_from(data)
        if magic != MAGIC:
            raise FrameError(f"value does not start with the rdzv magic (got {data[:2]!r})")
        if version != FORMAT_VERSION:
            raise FrameError(f"unsupported frame format version {version} (this rdzv reads {FORMAT_VERSION})")
        if count > LINEAGE_DEPTH or flags & ~(FLAG_ZLIB | FLAG_HMAC):
            raise FrameError("frame header is corrupt")
        head_end = _HEAD.size + NONCE_SIZE * count
        mac_size = MAC_SIZE if flags & FLAG_HMAC else 0
        body_start = head_end + 4 + mac_size
        if len(data) < body_start:
            raise FrameError("frame is truncated")
        head = data[:head_end]
        crc = data[head_end : head_end + 4]
        body = data[body_start:]
        if zlib.crc32(body, zlib.crc32(head)).to_bytes(4, "big") != crc:
            raise FrameError("checksum mismatch: the stored state is corrupt")
        self._verify(flags, head, body, data[head_end + 4 : body_start])
        payload = body
        if flags & FLAG_ZLIB:
            try:
                payload = zlib.decompress(body)
            except zlib.error as exc:
                raise FrameError(f"compressed payload is corrupt: {exc}") from exc
        lineage = tuple(
            data[_HEAD.size + i * NONCE_SIZE : _HEAD.size + (i + 1) * NONCE_SIZE] for i in range(count)
        )
        return Frame(payload=payload, nonce=nonce, lineage=lineage)

    def _verify(self, flags: int, head: bytes, body: bytes, mac: bytes) -> None:
        if self._secret is None:
            if flags & FLAG_HMAC:
                raise FrameError(
                    "the stored state is signed but no rendezvous secret is configured "
                    "(set --rdzv-conf secret_file=PATH or RDZV_SECRET on every node)"
                )
            return
        if not flags & FLAG_HMAC:
            raise FrameError("the stored state carries no signature but a rendezvous secret is configured")
        expected = hmac.new(self._secret, head + body, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, mac):
            raise FrameError("signature check failed: the stored state was not written with this rendezvous secret")
