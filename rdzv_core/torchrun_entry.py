"""The ``torchrun.handlers`` entry point.

torch imports and calls every entry point of that group on every launch, so
this module imports nothing beyond the standard library: the real work
happens in :func:`create` when torch asks for a handler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from torch.distributed.elastic.rendezvous import RendezvousHandler, RendezvousParameters


def create(params: RendezvousParameters) -> RendezvousHandler:
    """Create the handler for ``params.backend`` (``redis``, ``rdzv-redis``…)."""
    from rdzv_core.handler import create_rdzv_handler

    return create_rdzv_handler(params)


def handler_creator() -> Callable[[RendezvousParameters], RendezvousHandler]:
    """Zero-argument callable torch calls to obtain the creator."""
    return create
