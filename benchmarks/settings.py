"""Sizes and durations of a full run and of ``--quick``, and the command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks.rerdzv import Liveness

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("state", "overhead", "scale", "processes", "idle", "rerdzv")
BACKENDS = ("torch-c10d", "c10d", "redis", "etcd")


@dataclass(frozen=True)
class Plan:
    """Everything a run measures and how long it may take."""

    quick: bool = False
    sections: tuple[str, ...] = SECTIONS
    backends: tuple[str, ...] = BACKENDS
    protocols: tuple[str, ...] = ("torch", "scalable")
    overhead_stores: tuple[str, ...] = ("tcp", "file", "redis", "etcd")
    overhead_nodes: tuple[int, ...] = (8, 256)
    overhead_iterations: int = 1000
    overhead_warmup: int = 100
    scale_ns: tuple[int, ...] = (8, 32, 64, 128, 256, 512, 1024)
    scale_repeat_upto: int = 8  # N up to this gets `scale_repeats` repetitions
    # ... and so does N from this on (threads mode): a thousand threads in one
    # interpreter make single runs vary by 2x and more (GIL hand-offs).
    scale_repeat_from: int = 512
    scale_repeats: int = 3
    process_ns: tuple[int, ...] = (8, 64, 256, 1024)
    # 64 agent threads per process at N=1024: beyond that one interpreter's GIL hand-offs
    # (every waiting thread wakes every 5 ms) dominate what is measured.
    workers: int = 16
    # torch's c10d: ~1 s at 8, 2-6 s at 64, 8-11 s at 128 on a quiet machine of this kind, and
    # no end at 256; the scalable protocol's targets are 2 s at 256 and 5 s at 1024.
    join_timeouts: dict[int, float] = field(default_factory=lambda: {256: 20.0, 512: 20.0, 1024: 30.0})
    default_join_timeout: float = 30.0
    idle_ns: tuple[int, ...] = (8, 32)
    idle_seconds: float = 20.0
    monitor_interval: float = 0.1
    rerdzv_ns: tuple[int, ...] = (8, 32)
    # torch's default heartbeats; a 2 s last call so that the first round (min = N-1) reliably takes all N
    liveness: Liveness = Liveness(5, 3, 2)
    rerdzv_timeout: float = 60.0
    state_ns: tuple[int, ...] = (8, 32, 64, 128, 256, 512, 1024, 2048)

    def join_timeout(self, n: int) -> float:
        """How long a rendezvous of ``n`` agents may take before it counts as a timeout."""
        return self.join_timeouts.get(n, self.default_join_timeout)

    def repetitions(self, n: int) -> int:
        """How often a rendezvous of ``n`` agents is repeated."""
        return self.scale_repeats if n <= self.scale_repeat_upto or n >= self.scale_repeat_from else 1


QUICK = Plan(
    quick=True, overhead_nodes=(8, 256), overhead_iterations=80, overhead_warmup=20, scale_ns=(3,),
    scale_repeat_upto=0, scale_repeat_from=1 << 30, process_ns=(3,), workers=2, join_timeouts={}, default_join_timeout=20.0,
    idle_ns=(3,), idle_seconds=1.0, rerdzv_ns=(3,), liveness=Liveness(1, 2, 1), rerdzv_timeout=20.0,
    state_ns=(8, 256, 1024),
)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _words(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def parse_args(argv: list[str] | None = None) -> tuple[Plan, argparse.Namespace]:
    """The plan the command line asks for."""
    parser = argparse.ArgumentParser(description="rdzv benchmarks (writes docs/benchmarks.md)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in under a minute")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md", help="Markdown file to write")
    parser.add_argument("--img-dir", type=Path, help="where the PNGs go (default: img/ next to --out)")
    parser.add_argument("--sections", type=_words, help=f"subset of {','.join(SECTIONS)}")
    parser.add_argument("--backends", type=_words, help=f"subset of {','.join(BACKENDS)}")
    parser.add_argument("--protocols", type=_words, help="rdzv protocols to measure (default torch,scalable)")
    parser.add_argument("--scale-n", type=_ints, help="agent counts for the threads sweep")
    parser.add_argument("--process-n", type=_ints, help="agent counts for the processes sweep")
    parser.add_argument("--idle-n", type=_ints, help="agent counts for the idle load")
    parser.add_argument("--idle-seconds", type=float, help="idle window")
    parser.add_argument("--rerdzv-n", type=_ints, help="agent counts for the re-rendezvous")
    parser.add_argument("--join-timeout", type=float, help="one join timeout for every N")
    parser.add_argument("--iterations", type=int, help="overhead iterations per operation")
    parser.add_argument("--workers", type=int, help="worker processes of the processes mode")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    changes: dict[str, object] = {}
    for attr, key in (("sections", "sections"), ("backends", "backends"), ("protocols", "protocols"),
                      ("scale_n", "scale_ns"), ("process_n", "process_ns"), ("idle_n", "idle_ns"),
                      ("idle_seconds", "idle_seconds"), ("rerdzv_n", "rerdzv_ns"),
                      ("iterations", "overhead_iterations"), ("workers", "workers")):
        value = getattr(args, attr)
        if value is not None:
            changes[key] = value
    if args.join_timeout is not None:
        changes.update(join_timeouts={}, default_join_timeout=args.join_timeout)
    unknown = set(changes.get("sections", ())) - set(SECTIONS)  # type: ignore[arg-type]
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    return replace(plan, **changes), args  # type: ignore[arg-type]
