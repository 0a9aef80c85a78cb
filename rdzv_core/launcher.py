"""``rdzv-run``: torchrun with rdzv's adapters behind ``--rdzv-backend``.

It takes torchrun's arguments unchanged and runs torch's own launcher. The
only difference: every installed rdzv adapter is registered in torch's
handler registry under its name and ``rdzv-<name>``, *replacing* torch's
built-ins of the same name (``c10d``, ``etcd``) for this process only.
torch's registry refuses re-registration through its public ``register``, so
the replacement writes the registry's table directly; plain ``torchrun`` is
never affected.

One torch 2.13 launcher bug is mended for ``rdzv-run`` only: a spare agent
whose rendezvous closed (``RendezvousGracefulExitError``) returns ``None``
from its run, and torch's launcher then fails on ``None.is_failed()`` with
exit status 1. Under ``rdzv-run`` such an agent prints one line and exits 0
(:func:`end_spares_cleanly`).
"""

from __future__ import annotations

import sys
from typing import Sequence

from rdzv_core.errors import PluginError, UnknownBackendError
from rdzv_core.plugins import FIRST_PARTY, NAME_PREFIX, BackendRegistry, adapter_name, load_registry

#: torch backends that stay torch's when no rdzv adapter has their name.
TORCH_ONLY_BACKENDS = frozenset({"static", "etcd-v2", "etcd", "c10d"})


def register_backends(registry: BackendRegistry) -> list[str]:
    """Put every loaded adapter into torch's handler registry; return the names."""
    from torch.distributed.elastic.rendezvous import rendezvous_handler_registry

    from rdzv_core.handler import create_rdzv_handler

    def creator(params):  # type: ignore[no-untyped-def]
        return create_rdzv_handler(params, registry)

    names = []
    for name in registry.adapters:
        for alias in (name, NAME_PREFIX + name):
            rendezvous_handler_registry._registry[alias] = creator  # noqa: SLF001 - see module docstring
            names.append(alias)
    return names


#: The line a spare prints when the job ended without it.
SPARE_EXIT_LINE = "rdzv-run: this node was a spare; the rendezvous closed and the job ended without it"


def end_spares_cleanly() -> None:
    """Make a spare's graceful rendezvous exit end ``rdzv-run`` with status 0.

    torch's ``SimpleElasticAgent.run`` returns ``None`` after
    ``RendezvousGracefulExitError`` (both rdzv's handlers and torch's raise it
    for a spare when the run closes), and torch 2.13's ``launch_agent`` calls
    ``result.is_failed()`` on it. The agent's ``run`` is wrapped so that this
    case prints :data:`SPARE_EXIT_LINE` and returns a succeeded, empty result.
    """
    from torch.distributed.elastic.agent.server import api

    original = api.SimpleElasticAgent.run
    if getattr(original, "rdzv_spare_exit", False):
        return

    def run(self, role: str = api.DEFAULT_ROLE):  # type: ignore[no-untyped-def]
        result = original(self, role)
        if result is None:
            print(SPARE_EXIT_LINE, file=sys.stderr, flush=True)
            return api.RunResult(state=api.WorkerState.SUCCEEDED)
        return result

    run.rdzv_spare_exit = True  # type: ignore[attr-defined]
    api.SimpleElasticAgent.run = run  # type: ignore[method-assign]


def check_backend(backend: str, registry: BackendRegistry) -> str | None:
    """Fail early, with a helpful message, for a backend nobody provides.

    Returns a note to print when a torch built-in name falls back to torch's
    own backend because no rdzv adapter of that name is installed.
    """
    if backend in TORCH_ONLY_BACKENDS and adapter_name(backend) not in registry.adapters:
        if backend in FIRST_PARTY:
            return (
                f"no rdzv adapter named '{backend}' is installed: using torch's built-in '{backend}' backend "
                f"(pip install {FIRST_PARTY[backend]} to use rdzv's)"
            )
        return None
    registry.get(backend)  # raises UnknownBackendError / PluginError
    return None


def _requested_backend(argv: Sequence[str]) -> str:
    from torch.distributed.run import parse_args

    args = parse_args(list(argv))
    return "c10d" if args.standalone else args.rdzv_backend


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``rdzv-run`` (and ``rdzv run``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    registry = load_registry()
    try:
        note = check_backend(_requested_backend(argv), registry)
    except (UnknownBackendError, PluginError) as exc:
        print(f"rdzv-run: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if note:
        print(f"rdzv-run: note: {note}", file=sys.stderr)
    register_backends(registry)
    end_spares_cleanly()
    from torch.distributed.run import main as torch_main

    torch_main(argv)


if __name__ == "__main__":  # pragma: no cover
    main()
