"""Key names and small value encodings of the scalable protocol.

Every key lives under ``p/`` in the run's namespace:

``p/round``                   highest round number any node has opened (hint)
``p/closed``                  exists once the rendezvous is closed
``p/r/<R>/ticket``            counter: joiners of round R take tickets 1, 2, ...
``p/r/<R>/slot/<t>``          descriptor of the node holding ticket t
``p/r/<R>/seal``              created once: the admitted tickets (rank order)
``p/r/<R>/returning``         counter: members of round R-1 that joined R
``p/r/<R>/dead``              counter: members of round R known to be dead
``p/r/<R>/dead/<rank>``       created once per dead member (makes ``dead`` exact)
``p/r/<R>/alive/<rank>``      heartbeat of member ``rank`` of round R (TTL):
                              ``"<beat number> <unix time>"`` (:func:`beat_value`)
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

from rdzv_core.protocol import decisions
from rdzv_core.protocol.decisions import MARK_SIZE

PREFIX = "p/"
ROUND = PREFIX + "round"
CLOSED = PREFIX + "closed"


def counter(value: bytes | None) -> int:
    """A counter value (missing = 0)."""
    return 0 if value is None else int(value)


def round_key(round_no: int, name: str) -> str:
    """The key ``name`` of round ``round_no``."""
    return f"{PREFIX}r/{round_no}/{name}"


def ticket(round_no: int) -> str:
    """Counter of tickets handed out in the round."""
    return round_key(round_no, "ticket")


def slot(round_no: int, number: int) -> str:
    """Descriptor of the holder of ticket ``number``."""
    return round_key(round_no, f"slot/{number}")


def seal(round_no: int) -> str:
    """The round's admitted tickets, created exactly once."""
    return round_key(round_no, "seal")


def returning(round_no: int) -> str:
    """Counter of members of the previous round that rejoined."""
    return round_key(round_no, "returning")


def dead(round_no: int) -> str:
    """Counter of dead members of the round."""
    return round_key(round_no, "dead")


def dead_marker(round_no: int, rank: int) -> str:
    """Created once when member ``rank`` of the round is found dead."""
    return round_key(round_no, f"dead/{rank}")


def alive(round_no: int, rank: int) -> str:
    """Heartbeat of member ``rank`` of the round."""
    return round_key(round_no, f"alive/{rank}")


def waiting_counters(round_no: int) -> list[str]:
    """What ``num_nodes_waiting`` of a member of ``round_no`` reads: tickets and
    returners of the next round, dead members of this one."""
    return [ticket(round_no + 1), returning(round_no + 1), dead(round_no)]


def beat_value(number: int, wall_time: float) -> bytes:
    """A heartbeat's value: its number (what watchers compare: a new number is
    a new beat) and the writer's wall clock, which lets a one-shot reader
    (``rdzv status``) tell the beat's age."""
    return f"{number} {wall_time:.3f}".encode()


def beat_time(value: bytes | None) -> float | None:
    """The wall-clock time in a :func:`beat_value` (``None``: missing, or a
    bare beat number as older versions wrote)."""
    if value is None:
        return None
    _number, _, wall = value.partition(b" ")
    try:
        return float(wall) if wall else None
    except ValueError:
        return None


def slot_mark(descriptor: bytes) -> bytes:
    """The fingerprint of a slot's value that a seal carries for its rank
    (CRC-32, :data:`~rdzv_core.protocol.decisions.MARK_SIZE` bytes)."""
    return zlib.crc32(descriptor).to_bytes(MARK_SIZE, "big")


@dataclass(frozen=True)
class Seal:
    """A completed round: tickets in rank order."""

    round_no: int
    tickets: tuple[int, ...]
    #: (address, port) of rank 0's store for the workers, when its holder announced it.
    master: tuple[str, int] | None = None
    #: :func:`slot_mark` of each admitted slot as the sealer read it, in rank
    #: order, back to back (``None`` in seals written before rdzv had them).
    marks: bytes | None = None

    @property
    def world_size(self) -> int:
        """How many nodes the round admitted."""
        return len(self.tickets)

    def rank_of(self, number: int, mark: bytes) -> int | None:
        """The rank of ticket ``number`` held by the node whose slot has
        :func:`slot_mark` ``mark``, or ``None`` if it was not admitted."""
        return decisions.rank_in_seal(self.tickets, self.marks, number, mark)

    def encode(self) -> bytes:
        """Compact JSON; contiguous tickets 1..W are stored as a range."""
        w = len(self.tickets)
        doc: dict[str, object] = {"round": self.round_no}
        if self.tickets == tuple(range(1, w + 1)):
            doc["first"] = w
        else:
            doc["tickets"] = list(self.tickets)
        if self.master is not None:
            doc["master"] = list(self.master)
        if self.marks is not None:
            doc["marks"] = self.marks.hex()
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Seal:
        """Inverse of :meth:`encode`; raises ``ValueError`` on garbage."""
        doc = json.loads(data)
        master = doc.get("master")
        endpoint = (str(master[0]), int(master[1])) if master else None
        marks = bytes.fromhex(doc["marks"]) if "marks" in doc else None
        if "first" in doc:
            tickets: tuple[int, ...] = tuple(range(1, int(doc["first"]) + 1))
        else:
            tickets = tuple(int(t) for t in doc["tickets"])
        if marks is not None and len(marks) != MARK_SIZE * len(tickets):
            raise ValueError(f"the seal has {len(marks)} bytes of slot marks for {len(tickets)} tickets")
        return cls(int(doc["round"]), tickets, endpoint, marks)
