#!/usr/bin/env python
"""Run every rdzv benchmark and write docs/benchmarks.md.

    python benchmarks/run_all.py            # full run, ~15 minutes
    python benchmarks/run_all.py --quick    # smoke run, under a minute
    python benchmarks/run_all.py --quick --out /tmp/bench.md

Starts the stores it needs (a TCPStore server process, redis-server and
etcd on free loopback ports), runs the sections, prints every table and
writes the Markdown report with its plots. See ``--help`` for sizes.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

# c10d's C++ side warns on every server-side wait that times out (the scalable
# protocol's periodic wake-ups); keep the output readable.
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import idle, overhead, plots, primitives, report, rerdzv, scale, statesize, texts, verdicts  # noqa: E402
from benchmarks.agents import Target  # noqa: E402
from benchmarks.document import Section, render  # noqa: E402
from benchmarks.machine import describe, load_average  # noqa: E402
from benchmarks.servers import Servers  # noqa: E402
from benchmarks.settings import Plan, parse_args  # noqa: E402
from benchmarks.tcp_pool import TcpClientPool  # noqa: E402

STARTED = time.monotonic()


LOADS: list[tuple[str, str]] = []


def log(message: str) -> None:
    """Progress on stdout, with the elapsed time."""
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


def begin(section: str) -> None:
    """Note the machine's load as a section starts (it goes into the report)."""
    load = load_average()
    LOADS.append((section, load))
    log(f"{section} (load average {load})")


def needed_servers(plan: Plan) -> tuple[str, ...]:
    """Which stores the plan needs."""
    kinds = []
    if {"torch-c10d", "c10d"} & set(plan.backends) or "tcp" in plan.overhead_stores:
        kinds.append("tcp")
    kinds += [k for k in ("redis", "etcd") if k in plan.backends or k in plan.overhead_stores]
    return tuple(kinds)


def build_targets(plan: Plan, servers: Servers) -> list[Target]:
    """The compared backends: torch's c10d, then every rdzv adapter per protocol.
    A protocol that cannot be built here shows as "not available" in the tables."""
    targets: list[Target] = []
    if "torch-c10d" in plan.backends:
        targets.append(Target("torch-c10d", servers.endpoints["tcp"]))
    for protocol in plan.protocols:
        for kind in ("c10d", "redis", "etcd"):
            if kind in plan.backends:
                targets.append(Target(kind, servers.endpoints["tcp" if kind == "c10d" else kind], protocol))
    return targets


def state_section(plan: Plan, img: Path) -> tuple[Section, list[verdicts.Verdict]]:
    """Section 5 (cheap, runs first)."""
    rows = statesize.measure(plan.state_ns)
    section = Section("5", "State size", texts.STATE, [report.state_table(rows)],
                      _plot(lambda: plots.state_plot(rows, img / "state_size.png")))
    return section, verdicts.state(rows)


def overhead_section(plan: Plan, servers: Servers) -> tuple[Section, list[verdicts.Verdict], list]:
    """Section 1."""
    stores = tuple(s for s in plan.overhead_stores if s in servers.endpoints or s == "file")
    rows = overhead.run(servers, servers.workdir, stores, plan.overhead_nodes, plan.overhead_iterations,
                        plan.overhead_warmup, log)
    table = report.overhead_table(rows, verdicts.OVERHEAD_TARGET)
    table.notes.append(
        f"{plan.overhead_iterations} calls per side and operation after {plan.overhead_warmup} warm-up calls. "
        "*rdzv*: `RdzvBackend.set_state`/`get_state` built by `create_backend`. *adapter alone*: the adapter's "
        "`cas`/`read` with a ready-made frame (what the core adds = rdzv − adapter). *raw client*: TCPStore/FileStore "
        "`compare_set`/`get`; redis-py `EVALSHA` of a minimal version-checked CAS script / `GET`; an etcd `Txn` on "
        "`mod_revision` / `Range` over the gRPC stubs. *added*: rdzv − raw, µs. *blocks*: the ratio in each fifth "
        "of the run.")
    primitive_rows = primitives.run(servers, servers.workdir, stores, plan.overhead_iterations, plan.overhead_warmup,
                                    log)
    second = report.primitives_table(primitive_rows, verdicts.OVERHEAD_TARGET)
    second.notes.append(
        f"{plan.overhead_iterations} calls per side after {plan.overhead_warmup} warm-up calls, on one connection. "
        f"`read_many` reads {primitives.READ_MANY_KEYS} present keys (one `compare_set` per key on TCPStore and "
        "FileStore, whose `multi_get` waits for a missing key instead of reporting it); `wait_read` reads a "
        "key that is already there.")
    return Section("1", "Overhead of the core", texts.OVERHEAD, [table, second]), verdicts.overhead(rows), rows


def start_pool(plan: Plan) -> Any:
    """The worker processes of the processes mode."""
    from benchmarks.procs import WorkerPool

    return WorkerPool(plan.workers)


def _plot(make) -> list[Path]:  # type: ignore[no-untyped-def]
    try:
        return [make()]
    except ImportError as exc:
        log(f"plots skipped: {exc} (pip install matplotlib)")
        return []
    except ValueError as exc:  # e.g. a log axis with nothing on it: every run timed out
        log(f"plot skipped: {exc}")
        return []


def main(argv: list[str] | None = None) -> int:
    """Run the plan; write the report."""
    plan, args = parse_args(argv)
    out: Path = args.out.resolve()
    img: Path = (args.img_dir or out.parent / "img").resolve()
    load_before = load_average()
    log(f"rdzv benchmarks ({'quick' if plan.quick else 'full'}); load average {load_before}")
    sections: list[Section] = []
    found: dict[str, list[verdicts.Verdict]] = {}
    pool = None
    if "processes" in plan.sections and plan.quick:
        pool = start_pool(plan)  # quick: let the workers import torch while the rest runs
    servers = Servers(needed_servers(plan)).start()
    versions = servers.versions()
    log(f"stores up: {servers.endpoints}")
    try:
        targets = build_targets(plan, servers)
        log(f"targets: {', '.join(t.label for t in targets)}")
        tcp_pool = TcpClientPool(servers.endpoints["tcp"]) if "tcp" in servers.endpoints else None
        if "overhead" in plan.sections:
            begin("1. overhead")
            section, v, rows = overhead_section(plan, servers)
            section.images = _plot(lambda: plots.overhead_plot(rows, img / "overhead.png", verdicts.OVERHEAD_TARGET))
            sections.append(section)
            found["1. Overhead of the core"] = v
        for mode in ("threads", "processes"):
            if (mode == "threads" and "scale" in plan.sections) or (mode == "processes" and "processes" in plan.sections):
                begin(f"2. scale, {mode}")
                if mode == "processes" and pool is None:
                    pool = start_pool(plan)  # full: only now, so its start-up disturbs no measurement
                cells, section = scale_section(plan, targets, mode, img, pool, tcp_pool, servers.stats)
                sections.append(section)
                found[f"2. Rendezvous at scale ({mode})"] = verdicts.scale(cells, mode) + verdicts.scalable_join(cells, mode)
        if "idle" in plan.sections:
            begin("3. idle")
            cells_i = idle.run(targets, plan.idle_ns, plan.idle_seconds, plan.default_join_timeout,
                               plan.monitor_interval, servers, log, True if plan.quick else "batched", tcp_pool)
            table = report.idle_table(cells_i, plan.idle_seconds, plan.monitor_interval)
            sections.append(Section("3", "Idle load", texts.IDLE, [table],
                                    _plot(lambda: plots.idle_plot(cells_i, img / "idle.png"))))
            found["3. Idle load"] = verdicts.idle(cells_i)
        if "rerdzv" in plan.sections:
            begin("4. re-rendezvous")
            cells_r = rerdzv.run(targets, plan.rerdzv_ns, plan.liveness, plan.rerdzv_timeout, log, plan.quick, tcp_pool)
            table = report.rerdzv_table(cells_r, plan.liveness)
            sections.append(Section("4", "Re-rendezvous", texts.RERDZV, [table]))
            found["4. Re-rendezvous"] = verdicts.rerdzv(cells_r, plan.liveness)
        if "state" in plan.sections:
            begin("5. state size")
            section, v = state_section(plan, img)
            sections.append(section)
            found["5. State size"] = v
    finally:
        if pool is not None:
            pool.close()
        servers.stop()
    runtime = time.monotonic() - STARTED
    command = "python benchmarks/run_all.py" + (" --quick" if plan.quick else "")
    text = render(sections, found, describe(versions), out=out, command=command, runtime_s=runtime,
                  load_before=load_before, load_after=load_average(), mode="quick" if plan.quick else "full",
                  section_loads=LOADS)
    for section in sections:
        for table in section.tables:
            print("\n" + table.render(level=2))
    print("\n## Targets\n" + "\n".join(v.line() for group in found.values() for v in group))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    log(f"wrote {out} ({runtime:.0f} s)")
    return 0


def scale_section(plan: Plan, targets: list[Target], mode: str, img: Path, pool: Any = None,
                  tcp_pool: Any = None, server_stats: Any = None) -> tuple[list[scale.ScaleCell], Section]:
    """Section 2, threads or processes (``pool``: a started WorkerPool)."""
    if mode == "processes":
        detail = f"N agents over {plan.workers} worker processes, as threads within each"
        ns = plan.process_ns
    else:
        detail = "N handler threads in one process"
        ns = plan.scale_ns
    reps = plan.repetitions
    cells = scale.sweep(targets, ns, mode, reps, plan.join_timeout, pool, log, plan.quick, tcp_pool, server_stats)
    table = report.scale_table(cells, mode, detail)
    timeouts = ", ".join(f"N={n}: {plan.join_timeout(n):.0f} s" for n in ns)
    table.notes.append(f"Join timeouts: {timeouts}. A backend's sweep stops at its first timeout; protocol=torch "
                       "rdzv backends are skipped where torch c10d timed out (same handler). "
                       "*time vs torch* and *bytes vs torch*: ratio to torch c10d at the same N. *store calls*: "
                       "client calls counted by the instrument; *server requests*: what the Redis/etcd server "
                       "itself handled meanwhile (incl. the re-checks inside a `wait` and lease traffic).")
    title = "Rendezvous at scale" + (" — processes mode" if mode == "processes" else "")
    intro = texts.SCALE if mode == "threads" else texts.PROCESSES
    number = "2" if mode == "threads" else "2b"
    return cells, Section(number, title, intro, [table], _plot(lambda: plots.scale_plot(cells, img / f"scale_{mode}.png", mode)))


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without running interpreter shutdown: store clients' C++ threads
    # (TCPStore, gRPC) that are still winding down can abort it.
    os._exit(code)
