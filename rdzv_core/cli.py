"""The ``rdzv`` command: ``backends``, ``run``, ``new-adapter``, and the operator's ``status``, ``runs``, ``close``, ``purge``, ``doctor``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
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


def contract_label(adapter: type) -> str:
    """An adapter's declared contract version as ``major.minor``."""
    version = getattr(adapter, "contract_version", None)
    return ".".join(str(n) for n in version) if isinstance(version, tuple) else "-"


def list_backends() -> int:
    """Print installed adapters and load failures; exit 1 if any failed."""
    registry = load_registry()
    plain = torchrun_names()
    rows = [("backend", "rdzv-run names", "torchrun names", "distribution", "version", "contract", "capabilities",
             "status")]
    for name, info in sorted(registry.adapters.items()):
        torchrun = ", ".join(sorted(plain.get(name, []))) or "-"
        capabilities = ",".join(info.adapter.capabilities.declared()) or "-"
        rows.append((name, f"{name}, {NAME_PREFIX}{name}", torchrun, info.distribution, info.version,
                     contract_label(info.adapter), capabilities, "ok"))
    for failure in registry.failures:
        label = ", ".join(failure.names) or failure.plugin
        rows.append((label, "-", "-", failure.distribution, failure.version, "-", "-", f"FAILED: {failure.error}"))
    last = len(rows[0]) - 1
    widths = [max(len(row[i]) for row in rows) for i in range(last)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:last])) + "  " + row[last])
    if not registry.adapters and not registry.failures:
        print("no rdzv backends installed: pip install rdzv-c10d (or rdzv-redis, rdzv-etcd)")
    return 1 if registry.failures else 0


def new_adapter(name: str, folder: Path | None) -> int:
    """``rdzv new-adapter``: write the package, say what is next; 2 for a bad name or folder."""
    from rdzv_core.scaffold import ScaffoldError, create

    try:
        written, files = create(name, folder)
    except ScaffoldError as exc:
        print(f"rdzv new-adapter: error: {exc}", file=sys.stderr)
        return 2
    print(f"created {written}/ with {', '.join(files)}")
    print(f"next: pip install -e {written} && rdzv backends; then write the primitives in its adapter.py "
          "until its tests pass (see its README.md)")
    return 0


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
    scaffold = sub.add_parser("new-adapter", help="generate a package folder for a new adapter (./rdzv-NAME)")
    scaffold.add_argument("name", metavar="NAME", help="the backend name users will pass to --rdzv-backend")
    scaffold.add_argument("--dir", type=Path, default=None, metavar="PATH",
                          help="where to put the package (default: ./rdzv-NAME; must not exist or be empty)")
    from rdzv_core.admin.commands import add_commands, run_command

    add_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "backends":
        raise SystemExit(list_backends())
    if args.command == "new-adapter":
        raise SystemExit(new_adapter(args.name, args.dir))
    # The errors reach the operator as one line each; torch's C++ logging
    # (TCPStore's connect retries) would add its own. Read when torch loads.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")
    from rdzv_core.launcher import ignore_missing_numpy

    ignore_missing_numpy()
    raise SystemExit(run_command(args))


if __name__ == "__main__":  # pragma: no cover
    main()
