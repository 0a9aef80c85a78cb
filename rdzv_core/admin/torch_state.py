"""Reading torch's rendezvous state blob without trusting it.

torch's ``DynamicRendezvousHandler`` stores its whole state as one pickle.
An operator's command must not run whatever a writer of the store put
there, so the blob is read with :class:`AllowListUnpickler`, which can build
torch's rendezvous state classes and the ``datetime`` types they hold and
nothing else, after the frame's signature check when a secret is configured
(the frame is decoded by :class:`~rdzv_core.codec.FrameCodec` first).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from datetime import datetime, timezone

from rdzv_core.codec import FrameCodec, FrameError

_TORCH_MODULE = "torch.distributed.elastic.rendezvous.dynamic_rendezvous"
#: (module, name) of every global a torch rendezvous state may name.
ALLOWED_GLOBALS = frozenset(
    {
        (_TORCH_MODULE, "_RendezvousState"),
        (_TORCH_MODULE, "_NodeDesc"),
        ("datetime", "datetime"),
        ("datetime", "timezone"),
        ("datetime", "timedelta"),
    }
)


class UnsafeStateError(ValueError):
    """The state blob is not a torch rendezvous state (forged, corrupt or foreign)."""


class AllowListUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> type:
        """See base class: anything off the allow-list is refused."""
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafeStateError(f"the state names {module}.{name}, which a torch rendezvous state never holds")
        return super().find_class(module, name)

    def persistent_load(self, pid: object) -> object:
        """See base class: torch's state has no persistent ids."""
        raise UnsafeStateError("the state uses persistent ids, which a torch rendezvous state never holds")


@dataclass(frozen=True)
class TorchNode:
    """One node descriptor of torch's state (``addr_pid_localid``)."""

    addr: str
    pid: int
    local_id: int

    @property
    def node_id(self) -> str:
        """torch's own spelling of the node."""
        return f"{self.addr}_{self.pid}_{self.local_id}"


@dataclass(frozen=True)
class TorchState:
    """What an operator needs of torch's ``_RendezvousState``."""

    round: int
    complete: bool
    closed: bool
    deadline: datetime | None
    participants: dict[TorchNode, int]
    wait_list: tuple[TorchNode, ...]
    redundancy_list: tuple[TorchNode, ...]
    last_heartbeats: dict[TorchNode, datetime]


def _node(value: object) -> TorchNode:
    from torch.distributed.elastic.rendezvous.dynamic_rendezvous import _NodeDesc

    if not isinstance(value, _NodeDesc):
        raise UnsafeStateError(f"a node of the state is a {type(value).__name__}, not torch's _NodeDesc")
    return TorchNode(str(value.addr), int(value.pid), int(value.local_id))


def _utc(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise UnsafeStateError(f"a time in the state is a {type(value).__name__}, not a datetime")
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def load_torch_state(payload: bytes) -> TorchState:
    """Unpickle ``payload`` on the allow-list and check every field's type."""
    from torch.distributed.elastic.rendezvous.dynamic_rendezvous import _RendezvousState

    try:
        state = AllowListUnpickler(io.BytesIO(payload)).load()
    except UnsafeStateError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad blob
        raise UnsafeStateError(f"the state does not unpickle: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, _RendezvousState):
        raise UnsafeStateError(f"the state is a {type(state).__name__}, not torch's _RendezvousState")
    try:
        return TorchState(
            round=int(state.round),
            complete=bool(state.complete),
            closed=bool(state.closed),
            deadline=None if state.deadline is None else _utc(state.deadline),
            participants={_node(node): int(rank) for node, rank in dict(state.participants).items()},
            wait_list=tuple(sorted((_node(n) for n in state.wait_list), key=lambda n: n.node_id)),
            redundancy_list=tuple(sorted((_node(n) for n in state.redundancy_list), key=lambda n: n.node_id)),
            last_heartbeats={_node(node): _utc(at) for node, at in dict(state.last_heartbeats).items()},
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise UnsafeStateError(f"the state is not shaped like torch's _RendezvousState: {exc}") from None


def decode_torch_state(value: bytes, codec: FrameCodec) -> TorchState:
    """The stored value of key ``state``: the frame checked (signature first,
    when a secret is configured), then the payload read on the allow-list."""
    try:
        payload = codec.decode(value).payload
    except FrameError as exc:
        raise UnsafeStateError(str(exc)) from None
    return load_torch_state(payload)
