"""The ``rdzv`` command: ``backends``, ``run``, and the operator's ``status``, ``runs``, ``close``, ``purge``, ``doctor``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from importlib.metadata import entry_points

from rdzv_core.plugins import NAME_PREFIX, adapter_name, load_registry


def torchrun_names() -> dict[str, list[str]]:
    """Names each adapter has under plain torchrun (its ``torchrun.handlers`` entry points)."""
    names: dict[str, list[str]] = {}
    for ep in entry_points(group="torchrun.handlers"):
        if ep.value.startswith("rdzv_core."):
            names.setdefault(adapter_name(ep.name), []).append(ep.name)
    return names


def list_backends() -> int:
    """Print installed adapters and load failures; exit 1 if any failed."""
    registry = load_registry()
    plain = torchrun_names()
    rows = [("backend", "rdzv-run names", "torchrun names", "distribution", "version", "status")]
    for name, info in sorted(registry.adapters.items()):
        torchrun = ", ".join(sorted(plain.get(name, []))) or "-"
        rows.append((name, f"{name}, {NAME_PREFIX}{name}", torchrun, info.distribution, info.version, "ok"))
    for failure in registry.failures:
        label = ", ".join(failure.names) or failure.plugin
        rows.append((label, "-", "-", failure.distribution, failure.version, f"FAILED: {failure.error}"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5])
    if not registry.adapters and not registry.failures:
        print("no rdzv backends installed: pip install rdzv-c10d (or rdzv-redis, rdzv-etcd)")
    return 1 if registry.failures else 0


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``rdzv`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        from rdzv_core.launcher import main as run_main

        run_main(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="rdzv", description="Pluggable rendezvous backends for torchrun.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backends", help="list installed rdzv backends and any load errors")
    sub.add_parser("run", help="rdzv-run: torchrun with rdzv's backends (takes torchrun's arguments)")
    from rdzv_core.admin.commands import add_commands, run_command

    add_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "backends":
        raise SystemExit(list_backends())
    # The errors reach the operator as one line each; torch's C++ logging
    # (TCPStore's connect retries) would add its own. Read when torch loads.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")
    raise SystemExit(run_command(args))


if __name__ == "__main__":  # pragma: no cover
    main()
