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

import functools
import hashlib
import hmac
import os
import struct
import zlib
from typing import Callable, NamedTuple

MAGIC = b"RZ"
FORMAT_VERSION = 1
FLAG_ZLIB = 0x01
FLAG_HMAC = 0x02
NONCE_SIZE = 8
LINEAGE_DEPTH = 32
MAC_SIZE = 32
DEFAULT_COMPRESS_THRESHOLD = 1024

_HEAD = struct.Struct("!2sBB8sB")
_CRC = struct.Struct("!I")
_pack_head = _HEAD.pack
_pack_crc = _CRC.pack
_LINEAGE_BYTES = NONCE_SIZE * LINEAGE_DEPTH
_KNOWN_FLAGS = FLAG_ZLIB | FLAG_HMAC


class FrameError(ValueError):
    """A value is not a valid frame (corrupt, foreign, or badly signed)."""


class Frame(NamedTuple):
    """A decoded frame: the payload and its write identity.

    ``lineage_bytes`` holds the replaced frames' nonces back to back, newest
    first, exactly as they sit in the header (no per-nonce objects on the hot
    path); :attr:`lineage` splits them for callers that want a tuple.
    """

    payload: bytes
    nonce: bytes
    lineage_bytes: bytes = b""

    @property
    def lineage(self) -> tuple[bytes, ...]:
        """The nonces of the frames this one replaced, newest first."""
        raw = self.lineage_bytes
        return tuple(raw[i : i + NONCE_SIZE] for i in range(0, len(raw), NONCE_SIZE))

    def descends_from(self, nonce: bytes) -> bool:
        """Whether ``nonce`` is this frame's own or one it replaced."""
        if nonce == self.nonce:
            return True
        raw = self.lineage_bytes
        at = raw.find(nonce)
        while at >= 0:  # only matches on a nonce boundary count
            if at % NONCE_SIZE == 0:
                return True
            at = raw.find(nonce, at + 1)
        return False


#: ``new_nonce()`` returns a fresh random write identity (``NONCE_SIZE``
#: bytes from ``os.urandom``; a C-level callable, no Python frame per write).
new_nonce: Callable[[], bytes] = functools.partial(os.urandom, NONCE_SIZE)


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
        # 0 disables compression: no payload is that long.
        self._compress_from = compress_threshold or float("inf")

    def encode(self, payload: bytes, nonce: bytes, parent: Frame | None = None) -> bytes:
        """Frame ``payload`` as the successor of ``parent`` (if any)."""
        return self.encode_with_frame(payload, nonce, parent)[0]

    def encode_with_frame(self, payload: bytes, nonce: bytes, parent: Frame | None = None) -> tuple[bytes, Frame]:
        """Like :meth:`encode`, and also return the :class:`Frame` that the
        encoded bytes decode to (so a writer never decodes its own frame)."""
        flags = 0
        body = payload
        if len(payload) >= self._compress_from:
            packed = zlib.compress(payload, 1)
            if len(packed) < len(payload):
                flags = FLAG_ZLIB
                body = packed
        if parent is None:
            lineage = b""
        else:
            lineage = parent.nonce + parent.lineage_bytes[: _LINEAGE_BYTES - NONCE_SIZE]
        secret = self._secret
        if secret is not None:
            flags |= FLAG_HMAC
        fixed = _pack_head(MAGIC, FORMAT_VERSION, flags, nonce, len(lineage) // NONCE_SIZE)
        crc = _pack_crc(zlib.crc32(body, zlib.crc32(lineage, zlib.crc32(fixed))))
        if secret is None:
            data = b"".join((fixed, lineage, crc, body))
        else:
            mac = hmac.new(secret, b"".join((fixed, lineage, body)), hashlib.sha256).digest()
            data = b"".join((fixed, lineage, crc, mac, body))
        return data, Frame(payload, nonce, lineage)

    def decode(self, data: bytes) -> Frame:
        """Check and unpack a frame; raise :class:`FrameError` saying why not."""
        if len(data) < _HEAD.size + 4:
            raise FrameError(f"value is too short to be an rdzv frame ({len(data)} bytes)")
        magic, version, flags, nonce, count = _HEAD.unpack_from(data)
        if magic != MAGIC:
            raise FrameError(f"value does not start with the rdzv magic (got {data[:2]!r})")
        if version != FORMAT_VERSION:
            raise FrameError(f"unsupported frame format version {version} (this rdzv reads {FORMAT_VERSION})")
        if count > LINEAGE_DEPTH or flags & ~_KNOWN_FLAGS:
            raise FrameError("frame header is corrupt")
        head_end = _HEAD.size + NONCE_SIZE * count
        body_start = head_end + 4 + (MAC_SIZE if flags & FLAG_HMAC else 0)
        if len(data) < body_start:
            raise FrameError("frame is truncated")
        head = data[:head_end]
        body = data[body_start:]
        if zlib.crc32(body, zlib.crc32(head)) != _CRC.unpack_from(data, head_end)[0]:
            raise FrameError("checksum mismatch: the stored state is corrupt")
        if self._secret is not None or flags & FLAG_HMAC:
            self._verify(flags, head, body, data[head_end + 4 : body_start])
        payload = body
        if flags & FLAG_ZLIB:
            try:
                payload = zlib.decompress(body)
            except zlib.error as exc:
                raise FrameError(f"compressed payload is corrupt: {exc}") from exc
        return Frame(payload, nonce, head[_HEAD.size :])

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
