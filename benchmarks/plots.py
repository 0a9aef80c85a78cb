"""matplotlib PNGs for docs/benchmarks.md (skipped, with a note, if matplotlib is missing)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from benchmarks.idle import IdleCell
from benchmarks.overhead import OverheadRow
from benchmarks.report import per_node_bytes
from benchmarks.scale import ScaleCell
from benchmarks.statesize import SizeRow


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:  # type: ignore[no-untyped-def]
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def _log_axes(ax, xlabel: str) -> None:  # type: ignore[no-untyped-def]
    """Log-log axes over a count of agents/nodes (powers of two), with a grid."""
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.grid(True, which="both", alpha=0.3)


def scale_plot(cells: Sequence[ScaleCell], path: Path, mode: str) -> Path:
    """Wall time and bytes per agent vs N, one line per backend; timeouts as ×."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for index, label in enumerate(dict.fromkeys(c.label for c in cells)):
        mine = [c for c in cells if c.label == label]
        ok = [c for c in mine if c.ok]
        line = left.plot([c.n for c in ok], [c.median for c in ok], marker="o", label=label)[0]
        lost = [c for c in mine if c.status == "timeout"]
        if lost:  # side by side when several time out at one N
            left.scatter([c.n * 1.06 ** index for c in lost], [c.timeout for c in lost], marker="x", s=80,
                         color=line.get_color())
        counted = [c for c in ok if c.counts is not None]
        right.plot([c.n for c in counted], [c.counts.bytes_moved / c.n / 1024 for c in counted],  # type: ignore[union-attr]
                   marker="o", label=label, color=line.get_color())
    for ax in (left, right):
        _log_axes(ax, "agents N")
    left.set_ylabel("seconds until all ranks assigned (× = timeout)")
    left.set_title(f"Rendezvous wall time ({mode})")
    right.set_ylabel("KiB moved per agent")
    right.set_title("Store payload per agent")
    left.legend(fontsize=8)
    return _save(fig, path)


def idle_plot(cells: Sequence[IdleCell], path: Path) -> Path:
    """Idle payload bytes/s per node vs N."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label in dict.fromkeys(c.label for c in cells):
        ok = [c for c in cells if c.label == label and c.status == "ok"]
        ax.plot([c.n for c in ok], [per_node_bytes(c) for c in ok], marker="o", label=label)
    _log_axes(ax, "agents N")
    ax.set_ylabel("payload bytes/s per node")
    ax.set_title("Idle load per node")
    ax.legend(fontsize=8)
    return _save(fig, path)


def overhead_plot(rows: Sequence[OverheadRow], path: Path, target: float) -> Path:
    """rdzv/raw latency ratio per store, operation and state size."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    labels = [f"{r.adapter}\n{r.op.split()[0]}\n{r.payload}" for r in rows]
    ax.bar(range(len(rows)), [r.ratio for r in rows], color=["#4c72b0" if r.ratio <= target else "#dd8452" for r in rows])
    ax.errorbar(range(len(rows)), [r.ratio for r in rows],
                yerr=[[max(0.0, r.ratio - r.ratio_low) for r in rows], [max(0.0, r.ratio_high - r.ratio) for r in rows]],
                fmt="none", ecolor="black", capsize=3)
    ax.axhline(target, color="red", linestyle="--", label=f"target {target:.2f}×")
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("rdzv / raw client (median latency)")
    ax.set_title("Core overhead per call")
    ax.legend(fontsize=8)
    return _save(fig, path)


def state_plot(rows: Sequence[SizeRow], path: Path) -> Path:
    """Bytes per state write vs N: torch blob vs rdzv frame."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ns = [r.nodes for r in rows]
    ax.plot(ns, [r.torch_blob for r in rows], marker="o", label="torch c10d blob (pickle + base64)")
    ax.plot(ns, [r.rdzv_frame for r in rows], marker="o", label="rdzv frame (pickle + LZ4)")
    ax.plot(ns, [r.torch_write_wire for r in rows], linestyle="--", label="torch heartbeat write on the wire")
    ax.plot(ns, [r.rdzv_kv_write_wire for r in rows], linestyle="--", label="rdzv Redis/etcd write on the wire")
    _log_axes(ax, "nodes N")
    ax.set_ylabel("bytes")
    ax.set_title("Rendezvous state per write")
    ax.legend(fontsize=8)
    return _save(fig, path)
