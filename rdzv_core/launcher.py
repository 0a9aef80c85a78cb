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
(:func:`end_spares_cleanly`), and its agents end a job whose rendezvous was
closed by hand (``rdzv close``) with status 0 (:func:`end_jobs_on_close`),
also those re-joining at that moment (:func:`end_rejoins_on_close`).

A handler that cannot be created (a bad ``--rdzv-conf`` key or value, a bad
endpoint, a store that does not answer) ends ``rdzv-run`` with its one-line
message and exit status 1 instead of torch's launcher's traceback; the
traceback is kept with ``--verbose`` (as the first argument) or
``LOGLEVEL=DEBUG`` (:func:`main`).
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Sequence

from rdzv_core.errors import PluginError, UnknownBackendError
from rdzv_core.plugins import FIRST_PARTY, NAME_PREFIX, BackendRegistry, adapter_name, load_registry

#: torch backends that stay torch's when no rdzv adapter has their name.
TORCH_ONLY_BACKENDS = frozenset({"static", "etcd-v2", "etcd", "c10d"})


class StartFailures:
    """The exceptions rdzv's handler creators raised in this process: what
    :func:`main` reports as one line (a failure later in the job is not
    one of them and keeps torch's traceback)."""

    def __init__(self) -> None:
        self._seen: list[BaseException] = []

    def note(self, exc: BaseException) -> None:
        """Remember ``exc``, raised while a rendezvous handler was created."""
        self._seen.append(exc)

    def cause_of(self, exc: BaseException) -> BaseException | None:
        """The start failure ``exc`` is, or was raised from (``None``: not one)."""
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            if any(current is failure for failure in self._seen):
                return current
            seen.add(id(current))
            current = current.__cause__ or current.__context__
        return None


def register_backends(registry: BackendRegistry, failures: StartFailures | None = None) -> list[str]:
    """Put every loaded adapter into torch's handler registry; return the names.

    With ``failures``, every exception a handler creator raises is noted there.
    """
    from torch.distributed.elastic.rendezvous import rendezvous_handler_registry

    from rdzv_core.handler import create_rdzv_handler

    def creator(params):  # type: ignore[no-untyped-def]
        try:
            return create_rdzv_handler(params, registry)
        except Exception as exc:
            if failures is not None:
                failures.note(exc)
            raise

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
            closed = self.__dict__.get("_rdzv_closed_while_rejoining", False)
            print(CLOSED_EXIT_LINE if closed else SPARE_EXIT_LINE, file=sys.stderr, flush=True)
            return api.RunResult(state=api.WorkerState.SUCCEEDED)
        return result

    run.rdzv_spare_exit = True  # type: ignore[attr-defined]
    api.SimpleElasticAgent.run = run  # type: ignore[method-assign]


#: The line an agent prints when ``rdzv close`` ended its job.
CLOSED_EXIT_LINE = "rdzv-run: the rendezvous was closed (rdzv close); the workers were stopped and this agent exits"
#: At most one ``is_closed()`` store read per agent in this many seconds while workers run.
CLOSE_CHECK_INTERVAL = 1.0


class CloseWatch:
    """Whether a running job's rendezvous was closed, asked of the handler
    at most every :data:`CLOSE_CHECK_INTERVAL` seconds (at once when asked
    with ``now=True``); a store error counts as "not closed"."""

    def __init__(self, interval: float = CLOSE_CHECK_INTERVAL) -> None:
        self._interval = interval
        self._next = 0.0

    def closed(self, handler, now: bool = False) -> bool:  # type: ignore[no-untyped-def]
        """Ask ``handler.is_closed()`` if it is due (or ``now``)."""
        import time

        if not now and time.monotonic() < self._next:
            return False
        self._next = time.monotonic() + self._interval
        try:
            return bool(handler.is_closed())
        except Exception:  # noqa: BLE001 - a store hiccup must not end the job
            return False


def end_jobs_on_close() -> None:
    """Make ``rdzv-run``'s agents end their job with status 0 once the run is
    closed (``rdzv close``), on both protocols.

    torch's agent never asks ``is_closed()``: it would run its workers on and
    fail at the next re-rendezvous. Here the agent's worker monitor asks it
    (:class:`CloseWatch`) while the workers are healthy, and at once when they
    failed (another agent stopping its workers breaks their collectives): a
    closed run stops the workers and reports the group as succeeded, so the
    agent takes torch's normal exit path (exit barrier, ``shutdown()``, 0).
    """
    from torch.distributed.elastic.agent.server import api
    from torch.distributed.elastic.agent.server.local_elastic_agent import LocalElasticAgent

    original = LocalElasticAgent._monitor_workers  # noqa: SLF001 - the agent torch's launcher runs
    if getattr(original, "rdzv_close_watch", False):
        return

    def monitor(self, worker_group):  # type: ignore[no-untyped-def]
        result = original(self, worker_group)
        if result.state == api.WorkerState.SUCCEEDED:
            return result
        watch = self.__dict__.setdefault("_rdzv_close_watch", CloseWatch())
        failed = result.state in {api.WorkerState.FAILED, api.WorkerState.UNHEALTHY}
        if not watch.closed(worker_group.spec.rdzv_handler, now=failed):
            return result
        self._stop_workers(worker_group)  # noqa: SLF001
        print(CLOSED_EXIT_LINE, file=sys.stderr, flush=True)
        # torch's agent records one event per worker and wants each in the result.
        return api.RunResult(state=api.WorkerState.SUCCEEDED,
                             return_values={worker.global_rank: None for worker in worker_group.workers})

    monitor.rdzv_close_watch = True  # type: ignore[attr-defined]
    LocalElasticAgent._monitor_workers = monitor  # type: ignore[method-assign]  # noqa: SLF001
    end_rejoins_on_close()


def end_rejoins_on_close() -> None:
    """Make an agent that is re-rendezvousing when the run is closed end with
    status 0, as one whose workers were running does.

    torch's agent restarts its workers (a worker failed, or a node waits)
    with ``_restart_workers``: stop them, then ``next_rendezvous()``. If the
    run is closed meanwhile, the handler raises ``RendezvousClosedError``
    and torch's launcher ends with status 1. Here that error, raised while
    re-joining (the workers are already stopped), becomes torch's graceful
    rendezvous exit; the agent's ``run`` (see :func:`end_spares_cleanly`)
    then prints :data:`CLOSED_EXIT_LINE` and reports success. The first
    join of a run that is already closed still fails: that job never ran.
    """
    from torch.distributed.elastic.agent.server import api
    from torch.distributed.elastic.rendezvous import RendezvousClosedError, RendezvousGracefulExitError

    original = api.SimpleElasticAgent._restart_workers  # noqa: SLF001
    if getattr(original, "rdzv_close_watch", False):
        return

    def restart(self, worker_group):  # type: ignore[no-untyped-def]
        try:
            return original(self, worker_group)
        except RendezvousClosedError as exc:
            self._rdzv_closed_while_rejoining = True
            raise RendezvousGracefulExitError(f"{exc} (closed while this agent re-joined)") from exc

    restart.rdzv_close_watch = True  # type: ignore[attr-defined]
    api.SimpleElasticAgent._restart_workers = restart  # type: ignore[method-assign]  # noqa: SLF001


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


#: rdzv-run's own flag, accepted only before torchrun's arguments.
VERBOSE_FLAG = "--verbose"


def split_verbose(argv: Sequence[str]) -> tuple[bool, list[str]]:
    """(whether ``--verbose`` leads ``argv``, the arguments for torch's launcher)."""
    args = list(argv)
    verbose = False
    while args and args[0] == VERBOSE_FLAG:
        verbose = True
        args.pop(0)
    return verbose, args


def wants_tracebacks(verbose: bool) -> bool:
    """Whether a start failure is shown with its traceback: ``--verbose``, or
    torchrun's ``LOGLEVEL`` set to ``DEBUG``."""
    return verbose or os.environ.get("LOGLEVEL", "").strip().upper() == "DEBUG"


def start_failure_line(exc: BaseException) -> str:
    """The one line ``rdzv-run`` prints for a handler that could not be created."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    return f"rdzv-run: error: {message} (rdzv-run {VERBOSE_FLAG} shows the traceback)"


def show_rdzv_logs() -> None:
    """Print rdzv's own log records on stderr at torchrun's ``LOGLEVEL``
    (default WARNING), as torch does for its loggers: with ``LOGLEVEL=INFO``
    the scalable handler's progress lines appear. Without this only
    warnings would show (through Python's last-resort handler)."""
    import logging

    logger = logging.getLogger("rdzv_core")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    level = os.environ.get("LOGLEVEL", "WARNING").strip().upper()
    logger.setLevel(level if isinstance(logging.getLevelName(level), int) else "WARNING")
    logger.propagate = False


#: What torch warns on import where numpy is not installed (torch does not
#: require numpy; an agent never converts a tensor to a numpy array).
NUMPY_MISSING_WARNING = r"Failed to initialize NumPy"


def ignore_missing_numpy() -> None:
    """Keep torch's "Failed to initialize NumPy" warning out of this process's
    output (it would turn a one-line error into three lines in a virtualenv
    without numpy). Only this process: the workers import torch on their own."""
    import warnings

    warnings.filterwarnings("ignore", message=NUMPY_MISSING_WARNING, category=UserWarning)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``rdzv-run`` (and ``rdzv run``)."""
    ignore_missing_numpy()
    verbose, argv = split_verbose(sys.argv[1:] if argv is None else argv)
    registry = load_registry()
    try:
        note = check_backend(_requested_backend(argv), registry)
    except (UnknownBackendError, PluginError) as exc:
        print(f"rdzv-run: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if note:
        print(f"rdzv-run: note: {note}", file=sys.stderr)
    show_rdzv_logs()
    failures = StartFailures()
    register_backends(registry, failures)
    end_spares_cleanly()
    end_jobs_on_close()
    from torch.distributed.run import main as torch_main

    try:
        torch_main(argv)
    except Exception as exc:
        cause = failures.cause_of(exc)
        if cause is None:
            raise
        if wants_tracebacks(verbose):
            traceback.print_exc()
        print(start_failure_line(cause), file=sys.stderr, flush=True)
        raise SystemExit(1) from None


if __name__ == "__main__":  # pragma: no cover
    main()
