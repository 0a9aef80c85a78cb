"""torch's rendezvous events, recorded by the scalable handler.

torch's ``DynamicRendezvousHandler`` records an event (``RdzvEvent``) at each
step of a rendezvous through ``construct_and_record_rdzv_event``; tooling
that users point at torch (a handler installed for the ``dynamic_rendezvous``
destination in ``torch.distributed.elastic.events.handlers``) reads them.
The scalable handler records the same steps, with torch's messages and node
states, so that tooling sees it too. Event names are
``ScalableRendezvousHandler.<method>`` as torch's are
``DynamicRendezvousHandler.<method>``.

With no handler installed (torch's default) torch returns at once, so
recording costs one dictionary look-up.
"""

from __future__ import annotations

from torch.distributed.elastic.events import NodeState, construct_and_record_rdzv_event

__all__ = ["NodeState", "RendezvousEvents"]

#: The class name torch's tooling sees in event names.
HANDLER = "ScalableRendezvousHandler"


class RendezvousEvents:
    """Records one node's rendezvous events under torch's names and states."""

    def __init__(self, run_id: str, node: str, addr: str, pid: int) -> None:
        self._run_id = run_id
        self._node = node
        self._addr = addr
        self._pid = pid

    def _record(self, method: str, message: str, state: NodeState, rank: int | None = None) -> None:
        construct_and_record_rdzv_event(
            name=f"{HANDLER}.{method}", run_id=self._run_id, message=message, node_state=state,
            hostname=self._addr, pid=self._pid, rank=rank,
        )

    def joining(self) -> None:
        """The node starts a join (torch: ``next_rendezvous``, RUNNING)."""
        self._record("next_rendezvous", f"The node '{self._node}' attempts to join the next round of the "
                     f"rendezvous '{self._run_id}'.", NodeState.RUNNING)

    def joined(self, round_no: int, rank: int, world_size: int) -> None:
        """The node is a member of a completed round (torch: RUNNING, with its rank)."""
        self._record("next_rendezvous", f"The node '{self._node}' has joined round {round_no} of the "
                     f"rendezvous '{self._run_id}' as rank {rank} in a world of size {world_size}.",
                     NodeState.RUNNING, rank)

    def failed(self, method: str, exc: BaseException) -> None:
        """A step failed with ``exc`` (torch: FAILED, the message is the error)."""
        self._record(method, f"{type(exc).__name__}: {exc}", NodeState.FAILED)

    def closed(self) -> None:
        """The node closed the rendezvous (torch: ``_close``, SUCCEEDED)."""
        self._record("_close", f"The node '{self._node}' has closed the rendezvous '{self._run_id}'.",
                     NodeState.SUCCEEDED)

    def dead_member(self, round_no: int, rank: int) -> None:
        """This node recorded member ``rank`` of ``round_no`` dead (torch: a
        sync that removed nodes without a heartbeat)."""
        self._record("_keep_alive", f"As part of the sync operation the node(s) 'rank {rank} of round "
                     f"{round_no}' have been removed from the rendezvous '{self._run_id}' since they had no "
                     "heartbeat.", NodeState.RUNNING)

    def beat_failed(self, exc: BaseException) -> None:
        """A heartbeat failed (first failure of an outage; torch: FAILED)."""
        self._record("_keep_alive", f"The node '{self._node}' has failed to send a keep-alive heartbeat to "
                     f"the rendezvous '{self._run_id}' due to an error of type {type(exc).__name__}.",
                     NodeState.FAILED)
