"""Frame encoding: integrity, compression, signing, lineage."""

import pytest

from rdzv_core.codec import LINEAGE_DEPTH, FrameCodec, FrameError, new_nonce


def test_round_trip_keeps_payload_and_nonce() -> None:
    codec = FrameCodec()
    nonce = new_nonce()
    frame = codec.decode(codec.encode(b"state", nonce))
    assert (frame.payload, frame.nonce, frame.lineage) == (b"state", nonce, ())


def test_large_payloads_are_compressed_small_ones_are_not() -> None:
    codec = FrameCodec(compress_threshold=100)
    big, small = b"participant-" * 200, b"tiny"
    assert len(codec.encode(big, new_nonce())) < len(big) // 4
    assert codec.decode(codec.encode(big, new_nonce())).payload == big
    assert codec.encode(small, new_nonce()).endswith(small)


def test_incompressible_payload_is_stored_raw() -> None:
    import os

    payload = os.urandom(4096)
    encoded = FrameCodec(compress_threshold=10).encode(payload, new_nonce())
    assert encoded.endswith(payload)


def test_lineage_records_the_replaced_frames_newest_first() -> None:
    codec = FrameCodec()
    frames = [codec.decode(codec.encode(b"0", new_nonce()))]
    for i in range(LINEAGE_DEPTH + 3):
        frames.append(codec.decode(codec.encode(str(i).encode(), new_nonce(), frames[-1])))
    last = frames[-1]
    assert last.lineage[0] == frames[-2].nonce
    assert len(last.lineage) == LINEAGE_DEPTH
    assert last.descends_from(frames[-LINEAGE_DEPTH - 1].nonce)
    assert not last.descends_from(frames[0].nonce)  # fell off the end


@pytest.mark.parametrize("position", [0, 3, 5, 20, -1])
def test_any_flipped_byte_is_detected(position: int) -> None:
    codec = FrameCodec()
    data = bytearray(codec.encode(b"some rendezvous state", new_nonce()))
    data[position] ^= 0x40
    with pytest.raises(FrameError):
        codec.decode(bytes(data))


def test_truncated_and_foreign_values_are_rejected() -> None:
    codec = FrameCodec()
    good = codec.encode(b"payload", new_nonce())
    with pytest.raises(FrameError, match="too short"):
        codec.decode(good[:10])
    with pytest.raises(FrameError, match="magic"):
        codec.decode(b"Y2FuaW1hZGFt" * 4)  # torch's c10d sentinel
    with pytest.raises(FrameError, match="version"):
        codec.decode(good[:2] + b"\x09" + good[3:])


def test_signed_frames_verify_with_the_same_secret_only() -> None:
    signer = FrameCodec(secret=b"k1")
    data = signer.encode(b"state", new_nonce())
    assert signer.decode(data).payload == b"state"
    with pytest.raises(FrameError, match="signature check failed"):
        FrameCodec(secret=b"k2").decode(data)
    with pytest.raises(FrameError, match="no rendezvous secret is configured"):
        FrameCodec().decode(data)
    with pytest.raises(FrameError, match="no signature"):
        signer.decode(FrameCodec().encode(b"state", new_nonce()))


def test_tampered_signed_payload_fails_even_with_fixed_checksum() -> None:
    import zlib

    codec = FrameCodec(secret=b"k")
    data = bytearray(codec.encode(b"AAAA", new_nonce()))
    data[-4:] = b"BBBB"
    head_end = 13
    crc = zlib.crc32(bytes(data[-4:]), zlib.crc32(bytes(data[:head_end]))).to_bytes(4, "big")
    data[head_end:head_end + 4] = crc  # an attacker can recompute the CRC, not the MAC
    with pytest.raises(FrameError, match="signature check failed"):
        codec.decode(bytes(data))


def test_seal_returns_the_frame_its_bytes_decode_to() -> None:
    for codec in (FrameCodec(), FrameCodec(secret=b"k"), FrameCodec(compress_threshold=10)):
        parent = codec.decode(codec.encode(b"parent" * 50, new_nonce()))
        data, frame = codec.encode_with_frame(b"state" * 50, new_nonce(), parent)
        assert codec.decode(data) == frame
        assert frame.lineage == (parent.nonce,)


def test_descends_from_matches_whole_lineage_entries_only() -> None:
    codec = FrameCodec()
    first = codec.decode(codec.encode(b"0", b"AAAAaaaa"))
    second = codec.decode(codec.encode(b"1", b"BBBBbbbb", first))
    third = codec.decode(codec.encode(b"2", b"CCCCcccc", second))
    assert third.lineage_bytes == b"BBBBbbbbAAAAaaaa"
    assert third.descends_from(b"AAAAaaaa") and third.descends_from(b"BBBBbbbb")
    assert not third.descends_from(b"bbbbAAAA")  # straddles two entries: not a nonce of the chain


def _frame(flags: int, body: bytes) -> bytes:
    """A frame built by hand (no lineage, unsigned), as another writer would."""
    import struct
    import zlib

    head = struct.pack("!2sBB8sB", b"RZ", 1, flags, b"nonce-01", 0)
    return head + zlib.crc32(body, zlib.crc32(head)).to_bytes(4, "big") + body


def test_large_payloads_are_written_lz4_and_zlib_frames_of_rdzv_core_1_0_are_read() -> None:
    import zlib

    from rdzv_core.codec import FLAG_LZ4, FLAG_ZLIB

    big = b"participant-" * 200
    data = FrameCodec(compress_threshold=100).encode(big, new_nonce())
    assert data[3] == FLAG_LZ4 and len(data) < len(big) // 4
    legacy = _frame(FLAG_ZLIB, zlib.compress(big, 1))
    assert FrameCodec().decode(legacy).payload == big


def test_a_compressed_frame_that_declares_a_huge_payload_is_rejected_before_it_is_inflated(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import zlib

    import lz4.block

    from rdzv_core import codec as codec_module

    lying = bytearray(lz4.block.compress(b"x" * 4096, store_size=True))
    lying[:4] = (2**31).to_bytes(4, "little")  # a corrupt or forged size: 2 GiB
    with pytest.raises(FrameError, match="declares 2147483648 bytes"):
        FrameCodec().decode(_frame(codec_module.FLAG_LZ4, bytes(lying)))
    monkeypatch.setattr(codec_module, "MAX_PAYLOAD", 1024)
    with pytest.raises(FrameError, match="longer than 1024 bytes"):
        FrameCodec().decode(_frame(codec_module.FLAG_ZLIB, zlib.compress(b"\0" * 4096)))
    with pytest.raises(FrameError, match="compressed payload is corrupt"):
        FrameCodec().decode(_frame(codec_module.FLAG_LZ4, b"\x10\0\0\0garbage"))


def test_a_forked_child_draws_other_nonces_than_its_parent() -> None:
    """The nonce generator is re-seeded in a forked child: without it, parent
    and child would write the same nonces and settle each other's writes."""
    import os

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.write(write_fd, b"".join(new_nonce() for _ in range(4)))
        finally:
            os._exit(0)
    os.close(write_fd)
    child = os.read(read_fd, 64)
    os.waitpid(pid, 0)
    parent = b"".join(new_nonce() for _ in range(4))
    assert len(child) == 32 and child != parent
