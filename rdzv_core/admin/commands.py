"""The operator's subcommands of ``rdzv``: ``status``, ``runs``, ``close``, ``purge``, ``doctor``.

Each prints its result, or one ``rdzv <command>: error: ...`` line, and
returns the exit status (0 done, 1 failed or refused).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, TypeVar

from rdzv_core.admin.target import (
    AdminError,
    Connection,
    RunTarget,
    add_target_arguments,
    connect,
    env_default,
    target_from,
)

T = TypeVar("T")
#: Seconds between redraws of ``rdzv status --watch``.
WATCH_INTERVAL = 2.0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the operator's subcommands on ``rdzv``'s parser."""
    status = sub.add_parser("status", help="the live state of one run, and why its round is not complete")
    add_target_arguments(status)
    status.add_argument("--json", action="store_true", help="print one JSON document")
    status.add_argument("--watch", nargs="?", const=WATCH_INTERVAL, type=float, metavar="SECONDS",
                        help=f"redraw in place every SECONDS (default {WATCH_INTERVAL:g}) until Ctrl-C")
    runs = sub.add_parser("runs", help="the runs a store holds, with last activity and size")
    add_target_arguments(runs, run_id_required=False)
    close = sub.add_parser("close", help="close a run, as torch's set_closed does (its agents end)")
    add_target_arguments(close)
    purge = sub.add_parser("purge", help="delete every key of a finished run")
    add_target_arguments(purge, run_id_required=False)
    purge.add_argument("--force", action="store_true", help="purge even while members beat")
    purge.add_argument("--older-than", metavar="AGE",
                       help="only runs last active longer ago than AGE (90s, 10m, 2h, 1d); without --rdzv-id: "
                            "every such run of the store")
    doctor = sub.add_parser("doctor", help="check this node and the store before a launch (PASS/WARN/FAIL lines)")
    add_target_arguments(doctor, run_id_required=False)
    doctor.add_argument("--local-addr", "--local_addr", dest="local_addr", default=env_default("LOCAL_ADDR"),
                        help="as given to the launcher (env PET_LOCAL_ADDR); default: socket.getfqdn(), as torch")


def _with_run(target: RunTarget, work: Callable[[Connection], T], run_id: str | None = None) -> T:
    """``work(connection)`` on ``target`` (or on its store's run ``run_id``), then disconnect."""
    connection = connect(target, run_id)
    try:
        return work(connection)
    finally:
        connection.close()


def _run_ids(target: RunTarget) -> list[str]:
    """Every run id of ``target``'s store."""
    def work(connection: Connection) -> list[str]:
        try:
            return connection.adapter.run_ids()
        except NotImplementedError as exc:
            raise AdminError(str(exc)) from None
    return _with_run(target, work)


def status_command(args: argparse.Namespace) -> int:
    """``rdzv status``."""
    from rdzv_core.admin.report import render_text
    from rdzv_core.admin.status import run_status

    target = target_from(args)
    if args.watch is None:
        def once(connection: Connection) -> int:
            status = run_status(connection)
            print(status.to_json() if args.json else render_text(status))
            return 0
        return _with_run(target, once)

    def watch(connection: Connection) -> int:
        try:
            while True:
                try:
                    text = run_status(connection)
                    shown = text.to_json() if args.json else render_text(text)
                except AdminError as exc:
                    shown = f"rdzv status: error: {exc}"
                sys.stdout.write("\x1b[H\x1b[2J" + shown + f"\n\n(every {args.watch:g} s; Ctrl-C ends)\n")
                sys.stdout.flush()
                time.sleep(max(args.watch, 0.1))
        except KeyboardInterrupt:
            return 0
    return _with_run(target, watch)


def close_command(args: argparse.Namespace) -> int:
    """``rdzv close``."""
    from rdzv_core.admin.cleanup import close_run

    def work(connection: Connection) -> int:
        print(close_run(connection))
        return 0
    return _with_run(target_from(args), work)


def runs_command(args: argparse.Namespace) -> int:
    """``rdzv runs``."""
    from rdzv_core.admin.cleanup import render_runs, run_row

    target = target_from(args, run_id_required=False)
    rows = [_with_run(target, run_row, run_id) for run_id in _run_ids(target)]
    print(render_runs(rows) if rows else "the store holds no run")
    return 0


def purge_command(args: argparse.Namespace) -> int:
    """``rdzv purge``: one run, or with ``--older-than`` and no run id every old run."""
    from rdzv_core.admin.cleanup import older_runs, parse_age, purge_run, run_row

    target = target_from(args, run_id_required=False)
    older = parse_age(args.older_than) if args.older_than else None

    def purge(connection: Connection) -> str:
        return purge_run(connection, args.force, older)

    if target.run_id:
        print(_with_run(target, purge))
        return 0
    if older is None:
        raise AdminError("--rdzv-id is required (or set PET_RDZV_ID), unless --older-than picks the runs")
    rows = [_with_run(target, run_row, run_id) for run_id in _run_ids(target)]
    failed = 0
    for row in older_runs(rows, older):
        try:
            print(_with_run(target, purge, row.run_id))
        except AdminError as exc:
            print(f"rdzv purge: {exc}", file=sys.stderr)
            failed += 1
    if not older_runs(rows, older):
        print(f"no run of the store was last active more than {older:g} s ago")
    return 1 if failed else 0


def doctor_command(args: argparse.Namespace) -> int:
    """``rdzv doctor``: one line per check, a summary; 1 if any check failed.
    Without ``--rdzv-id`` the scratch keys go under torchrun's default run id."""
    from dataclasses import replace

    from rdzv_core.doctor.checks import exit_status, render
    from rdzv_core.doctor.run import doctor

    target = target_from(args, run_id_required=False)
    checks = doctor(replace(target, run_id=target.run_id or DOCTOR_RUN_ID), args.local_addr)
    print(render(checks))
    return exit_status(checks)


#: torchrun's own default ``--rdzv-id``: doctor's scratch keys go there without one.
DOCTOR_RUN_ID = "none"

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "status": status_command,
    "runs": runs_command,
    "close": close_command,
    "purge": purge_command,
    "doctor": doctor_command,
}


def run_command(args: argparse.Namespace) -> int:
    """Run the subcommand ``args.command``; one error line and status 1 on failure."""
    try:
        return COMMANDS[args.command](args)
    except AdminError as exc:
        print(f"rdzv {args.command}: error: {exc}", file=sys.stderr)
        return 1
