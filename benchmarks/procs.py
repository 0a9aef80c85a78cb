"""Processes mode: agents spread over worker processes (no shared GIL).

A :class:`WorkerPool` keeps ``size`` spawned workers alive for the whole
benchmark (each imports torch once). For one run the parent tells every
worker to create its share of the N handlers, then sends ``join`` to all of
them back to back and times until the last one reports. Each worker runs
its agents as threads (:func:`benchmarks.join.timed_join`) and answers with
the ranks it got and its store counters.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from benchmarks.agents import AgentGroup, NotAvailable, Target
from benchmarks.counters import Snapshot
from benchmarks.join import GRACE, JoinOutcome


@dataclass
class _Rank:
    rank: int
    world_size: int


def _worker(conn: Any) -> None:
    """A worker's command loop (runs in the child process)."""
    from benchmarks.join import timed_join

    group: AgentGroup | None = None
    while True:
        command, args = conn.recv()
        try:
            if command == "warm":  # import torch and the adapters now, while the parent does other work
                import importlib

                from benchmarks.instruments import base_registry
                from rdzv_core.handler import create_rdzv_handler  # noqa: F401

                base_registry()
                for client in ("redis", "grpc", "pyetcd"):
                    try:
                        importlib.import_module(client)
                    except ImportError:
                        pass
                conn.send(("warm", None))
            elif command == "create":
                target, run_id, count, min_nodes, max_nodes, settings = args
                group = AgentGroup(target, min_nodes, max_nodes, settings, run_id=run_id)
                group.add_agents(count)
                conn.send(("ready", None))
            elif command == "join":
                assert group is not None
                outcome = timed_join(group.handlers, args, group.counters.snapshot, check=False)
                ranks = [(i.rank, i.world_size) for i in outcome.infos]
                conn.send(("done", (outcome.status, outcome.seconds, ranks, outcome.counts.as_dict())))
            elif command == "close":
                if group is not None:
                    group.close()
                group = None
                conn.send(("closed", None))
            elif command == "ping":
                conn.send(("pong", None))
            elif command == "exit":
                conn.send(("bye", None))
                os._exit(0)  # leftover client threads must not keep the worker alive
        except NotAvailable as exc:
            conn.send(("unavailable", str(exc)))
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class WorkerPool:
    """``size`` long-lived worker processes."""

    def __init__(self, size: int) -> None:
        ctx = mp.get_context("spawn")
        self._conns = []
        self._procs = []
        for _ in range(size):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child,), daemon=True)
            proc.start()
            self._conns.append(parent)
            self._procs.append(proc)
            parent.send(("warm", None))
        self._warming = True

    @property
    def size(self) -> int:
        """How many workers."""
        return len(self._conns)

    def _ask(self, conns: list[Any], message: tuple[str, Any], timeout: float) -> list[tuple[str, Any]]:
        for conn in conns:
            conn.send(message)
        replies = []
        for conn in conns:
            if not conn.poll(timeout):
                raise TimeoutError(f"a benchmark worker did not answer {message[0]!r} within {timeout:.0f} s")
            replies.append(conn.recv())
        return replies

    def run_join(self, target: Target, n: int, settings: dict[str, Any], timeout: float, run_id: str,
                 server: Callable[[], Any] | None = None) -> JoinOutcome:
        """One rendezvous of ``n`` agents spread over the workers (``server``
        reads the store's own counters around the join)."""
        if self._warming:  # drain the warm-up replies
            for conn in self._conns:
                conn.send(("ping", None))
            for conn in self._conns:
                while conn.poll(300) and conn.recv()[0] != "pong":
                    pass
            self._warming = False
        used = self._conns[: min(self.size, n)]
        shares = [n // len(used) + (1 if i < n % len(used) else 0) for i in range(len(used))]
        try:
            for conn, share in zip(used, shares):
                conn.send(("create", (target, run_id, share, n, n, settings)))
            replies = [conn.recv() if conn.poll(300) else ("error", "no answer to create") for conn in used]
            for kind, detail in replies:
                if kind == "unavailable":
                    raise NotAvailable(detail)
                if kind != "ready":
                    return JoinOutcome(f"error: {detail}", 0.0)
            server_before = server() if server else None
            started = time.monotonic()
            for conn in used:
                conn.send(("join", timeout))
            results = []
            for conn in used:
                left = started + timeout + GRACE + 30 - time.monotonic()
                results.append(conn.recv() if conn.poll(max(1.0, left)) else ("error", "no answer to join"))
            finished = time.monotonic()
            server_after = server() if server else None
        finally:
            self._ask(used, ("close", None), 120)
        outcome = _combine(results, n, finished - started, timeout)
        if server_before is not None and server_after is not None:
            outcome.server = server_after - server_before
        return outcome

    def close(self) -> None:
        """Stop every worker."""
        for conn in self._conns:
            try:
                conn.send(("exit", None))
            except OSError:
                pass
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()


def _combine(results: list[tuple[str, Any]], n: int, seconds: float, timeout: float) -> JoinOutcome:
    counts = Snapshot()
    ranks: list[tuple[int, int]] = []
    statuses = []
    for kind, detail in results:
        if kind != "done":
            return JoinOutcome(f"error: {detail}", seconds)
        status, _, got, snap = detail
        statuses.append(status)
        ranks.extend(got)
        counts = counts + Snapshot(**snap)
    if any(s == "timeout" for s in statuses):
        return JoinOutcome("timeout", timeout, counts=counts)
    bad = [s for s in statuses if s != "ok"]
    if bad:
        return JoinOutcome(bad[0], seconds, counts=counts)
    infos = [_Rank(r, w) for r, w in ranks]
    from benchmarks.join import check_ranks

    return JoinOutcome(check_ranks(infos, n), seconds, infos, counts)
