"""The backend's per-call shortcuts keep torch-visible behaviour unchanged."""

import pytest
from torch.distributed.elastic.rendezvous import RendezvousStateError

from rdzv_core.backend import RdzvBackend
from rdzv_core.codec import FrameCodec
from rdzv_core.guarded import GuardedStore
from rdzv_core.testing.memory import MemorySpace, MemoryStateStore


class CountingCodec(FrameCodec):
    """A codec that counts full decodes."""

    decodes = 0

    def decode(self, data: bytes):  # type: ignore[no-untyped-def]
        self.decodes += 1
        return super().decode(data)


def backend_pair(codec: FrameCodec | None = None) -> tuple[RdzvBackend, RdzvBackend, MemoryStateStore]:
    space = MemorySpace()
    adapters = [MemoryStateStore(space, "run") for _ in range(2)]
    backends = [RdzvBackend(GuardedStore(a, "memory", 5.0), "memory", codec or FrameCodec()) for a in adapters]
    return backends[0], backends[1], adapters[0]


def test_unchanged_state_is_decoded_once_and_own_writes_never() -> None:
    codec = CountingCodec(compress_threshold=16)
    writer, _, _ = backend_pair()
    reader = RdzvBackend(writer._store, "memory", codec)
    state = b"participants" * 100
    _, token, applied = writer.set_state(state)
    assert applied
    for _ in range(5):
        payload, _ = reader.get_state()
        assert payload == state
    assert codec.decodes == 1
    _, token, applied = reader.set_state(b"next", reader.get_state()[1])
    assert applied and reader.get_state()[0] == b"next" and codec.decodes == 1


def test_a_changed_value_is_checked_again_even_at_the_same_length() -> None:
    backend, _, adapter = backend_pair()
    backend.set_state(b"state-one")
    value = adapter.read("state").value
    assert backend.get_state()[0] == b"state-one"
    corrupt = value[:-1] + bytes([value[-1] ^ 1])
    adapter.write("state", corrupt)
    with pytest.raises(RendezvousStateError, match="checksum"):
        backend.get_state()


def test_lost_race_returns_the_winner_state_and_a_usable_token() -> None:
    first, second, _ = backend_pair()
    _, base, _ = first.set_state(b"base")
    _, _, won = first.set_state(b"mine", base)
    payload, token, applied = second.set_state(b"theirs", base)
    assert won and not applied and payload == b"mine"
    assert second.set_state(b"theirs", token)[2]
    assert first.get_state()[0] == b"theirs"


def test_frames_chain_their_lineage_across_writes() -> None:
    backend, _, adapter = backend_pair()
    token = None
    nonces = []
    for i in range(5):
        _, token, _ = backend.set_state(str(i).encode(), token)
        nonces.append(token.frame.nonce)
    frame = FrameCodec().decode(adapter.read("state").value)
    assert frame.nonce == nonces[-1] and frame.lineage == tuple(reversed(nonces[:-1]))
