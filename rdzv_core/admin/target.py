"""Which run an operator command is about, and connecting to its store.

Commands take the launcher's own flags (``--rdzv-backend``,
``--rdzv-endpoint``, ``--rdzv-id``, ``--rdzv-conf``, ``--nnodes``) and, like
torchrun, fall back to the ``PET_RDZV_*`` / ``PET_NNODES`` environment
variables, so a user copies them from the job's command line or
environment. A c10d TCPStore is always joined as a client (``is_host`` is
forced off): a command never hosts the store it is asked to inspect.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from rdzv_core.errors import RdzvConfigError
from rdzv_core.plugins import BackendRegistry, adapter_name, load_registry

if TYPE_CHECKING:  # pragma: no cover
    from torch.distributed.elastic.rendezvous import RendezvousParameters

    from rdzv_core.adapter import StateStore
    from rdzv_core.codec import FrameCodec
    from rdzv_core.guarded import GuardedStore
    from rdzv_core.settings import CoreSettings

#: A run id for commands about a whole store (``rdzv runs``): adapters need one to connect.
STORE_WIDE_RUN_ID = "rdzv-admin"


class AdminError(Exception):
    """A command cannot do what was asked; the message is the one line to print."""


@dataclass(frozen=True)
class RunTarget:
    """A run's coordinates as the launcher took them."""

    backend: str
    endpoint: str
    run_id: str
    conf: dict[str, Any] = field(default_factory=dict)
    min_nodes: int | None = None
    max_nodes: int | None = None

    def params(self, run_id: str | None = None) -> RendezvousParameters:
        """torch's ``RendezvousParameters`` for this run (or for ``run_id``), client-only on c10d."""
        from torch.distributed.elastic.rendezvous import RendezvousParameters

        conf = dict(self.conf)
        if adapter_name(self.backend) == "c10d" and str(conf.get("store_type", "tcp")).strip() != "file":
            conf["is_host"] = "false"
        return RendezvousParameters(self.backend, self.endpoint, run_id or self.run_id or STORE_WIDE_RUN_ID,
                                    self.min_nodes or 1, self.max_nodes or self.min_nodes or 1, **conf)


def env_default(name: str, default: str | None = None) -> str | None:
    """torchrun's environment variable ``PET_<name>``, else ``default``."""
    value = os.environ.get(f"PET_{name}")
    return value if value not in (None, "") else default


def add_target_arguments(parser: argparse.ArgumentParser, run_id_required: bool = True) -> None:
    """The launcher's rendezvous flags (with torchrun's ``PET_*`` fallbacks)."""
    parser.add_argument("--rdzv-backend", "--rdzv_backend", dest="rdzv_backend", default=env_default("RDZV_BACKEND"),
                        help="as given to the launcher (env PET_RDZV_BACKEND)")
    parser.add_argument("--rdzv-endpoint", "--rdzv_endpoint", dest="rdzv_endpoint",
                        default=env_default("RDZV_ENDPOINT", ""), help="as given to the launcher (env PET_RDZV_ENDPOINT)")
    parser.add_argument("--rdzv-id", "--rdzv_id", dest="rdzv_id", default=env_default("RDZV_ID"),
                        help="the run id (env PET_RDZV_ID)" + ("" if run_id_required else "; optional here"))
    parser.add_argument("--rdzv-conf", "--rdzv_conf", dest="rdzv_conf", default=env_default("RDZV_CONF", ""),
                        help="k=v,... as given to the launcher (env PET_RDZV_CONF)")
    parser.add_argument("--nnodes", default=env_default("NNODES"),
                        help="MIN:MAX or N as given to the launcher (env PET_NNODES); optional")


def parse_nnodes(text: str | None) -> tuple[int | None, int | None]:
    """``"2:4"`` -> (2, 4), ``"3"`` -> (3, 3), nothing -> (None, None)."""
    if not text:
        return None, None
    low, _, high = text.partition(":")
    try:
        low_n = int(low)
        high_n = int(high) if high else low_n
    except ValueError:
        raise AdminError(f"--nnodes={text!r} is invalid: expected N or MIN:MAX") from None
    if low_n < 1 or high_n < low_n:
        raise AdminError(f"--nnodes={text!r} is invalid: expected 1 <= MIN <= MAX")
    return low_n, high_n


def target_from(args: argparse.Namespace, run_id_required: bool = True) -> RunTarget:
    """The :class:`RunTarget` of parsed arguments; :class:`AdminError` for what is missing."""
    from torch.distributed.elastic.rendezvous.utils import _parse_rendezvous_config

    if not args.rdzv_backend:
        raise AdminError("--rdzv-backend is required (or set PET_RDZV_BACKEND), as given to the launcher")
    if run_id_required and not args.rdzv_id:
        raise AdminError("--rdzv-id is required (or set PET_RDZV_ID), as given to the launcher")
    try:
        conf = _parse_rendezvous_config(args.rdzv_conf or "")
    except ValueError as exc:
        raise AdminError(f"--rdzv-conf={args.rdzv_conf!r} is invalid: {exc}") from None
    low, high = parse_nnodes(args.nnodes)
    return RunTarget(args.rdzv_backend, args.rdzv_endpoint or "", args.rdzv_id or "", conf, low, high)


@dataclass
class Connection:
    """One command's connection to a run: the adapter, wrapped as agents wrap it."""

    target: RunTarget
    adapter: StateStore
    store: GuardedStore
    codec: FrameCodec
    core: CoreSettings

    def close(self) -> None:
        """Release the adapter's connections."""
        self.adapter.close()


def connect(target: RunTarget, run_id: str | None = None, registry: BackendRegistry | None = None) -> Connection:
    """Connect to ``target``'s store as an agent would (never hosting a c10d store).

    Every failure becomes an :class:`AdminError` with the one line to print.
    """
    from torch.distributed.elastic.rendezvous import RendezvousError

    from rdzv_core.errors import PluginError, UnknownBackendError
    from rdzv_core.handler import connect_adapter, guard_adapter

    registry = registry if registry is not None else load_registry()
    if run_id is not None:
        target = replace(target, run_id=run_id)
    params = target.params()
    try:
        adapter, core = connect_adapter(params, registry)
    except (RdzvConfigError, UnknownBackendError, PluginError) as exc:
        raise AdminError(str(exc)) from exc
    except RendezvousError as exc:
        if adapter_name(target.backend) == "c10d":
            raise AdminError(
                f"{exc} -- nothing answers there: rdzv commands join a c10d TCPStore as clients only and never "
                "host one; the store lives in the agent that hosts it, so it is gone once that agent exits"
            ) from exc
        raise AdminError(str(exc)) from exc
    store, codec = guard_adapter(adapter, core)
    return Connection(target, adapter, store, codec, core)
