"""Tables of every section, built from the measured cells."""

from __future__ import annotations

import math
from typing import Sequence

from benchmarks.idle import IdleCell
from benchmarks.overhead import OverheadRow
from benchmarks.primitives import PrimitiveRow
from benchmarks.rerdzv import Liveness, RerdzvCell
from benchmarks.scale import ScaleCell
from benchmarks.stats import fmt_bytes, fmt_num, fmt_ratio, fmt_seconds, ratio
from benchmarks.statesize import SizeRow
from benchmarks.tables import Table

BASELINE = "torch c10d"


def overhead_table(rows: Sequence[OverheadRow], target: float) -> Table:
    """Section 1."""
    table = Table("Core overhead per call (µs; interleaved, client pinned to one CPU)", [
        "store", "operation", "state", "rdzv median (p99)", "adapter alone", "raw client median (p99)",
        "added", "rdzv / raw", "blocks min–max", f"≤ {target:.2f}×"])
    for r in rows:
        table.add(r.adapter, r.op, f"{r.payload} ({fmt_bytes(r.payload_bytes)})",
                  f"{r.ours_median_us:.1f} ({r.ours_p99_us:.0f})", f"{r.adapter_median_us:.1f}",
                  f"{r.raw_median_us:.1f} ({r.raw_p99_us:.0f})", f"{r.ours_median_us - r.raw_median_us:+.1f}",
                  fmt_ratio(r.ratio), f"{fmt_ratio(r.ratio_low)}–{fmt_ratio(r.ratio_high)}",
                  "yes" if r.ratio <= target else "**no**")
    return table


def primitives_table(rows: Sequence[PrimitiveRow], target: float) -> Table:
    """Section 1, the scalable protocol's primitives."""
    table = Table("The scalable protocol's primitives through the core's guard (µs; interleaved)", [
        "store", "primitive", "guarded median", "adapter alone", "added", "guarded / adapter",
        f"≤ {target:.2f}×"])
    for r in rows:
        table.add(r.adapter, r.op, f"{r.guarded_median_us:.1f}", f"{r.adapter_median_us:.1f}",
                  f"{r.guarded_median_us - r.adapter_median_us:+.1f}", fmt_ratio(r.ratio),
                  "yes" if r.ratio <= target else "**no**")
    return table


def _time_cell(cell: ScaleCell) -> str:
    if cell.ok:
        text = fmt_seconds(cell.median)
        runs = len(cell.seconds) + cell.timeouts
        if runs > 1:
            high = "timeout" if cell.timeouts else f"{max(cell.seconds):.2f}"
            text += f" ({min(cell.seconds):.2f}–{high}, n={runs})"
        return text
    if cell.status == "timeout":
        return f"timeout ({cell.timeout:.0f} s)"
    return cell.status


def timed_out(cell: ScaleCell) -> bool:
    """Timed out at this N, or skipped because it (or torch's handler it runs) timed out."""
    return cell.status == "timeout" or cell.status.startswith(("skipped (after timeout", "skipped (torch's handler timed out"))


def time_vs(ours: ScaleCell, torch: ScaleCell | None) -> str:
    """The wall-time comparison with torch at the same N, in words or as a ratio."""
    if torch is None or ours.label == BASELINE:
        return ""
    if ours.ok and torch.ok:
        return fmt_ratio(ratio(ours.median, torch.median))
    if ours.ok and torch.status == "timeout":
        return f"< {fmt_ratio(ratio(ours.median, torch.timeout))} (torch timed out)"
    if ours.ok and timed_out(torch):
        return "faster (torch timed out at a smaller N)"
    if timed_out(ours) and timed_out(torch):
        return "both timed out"
    if ours.status == "timeout" and torch.ok:
        return f"> {fmt_ratio(ratio(ours.timeout, torch.median))}"
    return "–"


def bytes_vs(ours: ScaleCell, torch: ScaleCell | None) -> str:
    """Bytes moved by ours / by torch when both completed."""
    if torch is None or ours.label == BASELINE or not (ours.ok and torch.ok) or ours.counts is None or torch.counts is None:
        return ""
    return fmt_ratio(ratio(ours.counts.bytes_moved, torch.counts.bytes_moved))


def scale_table(cells: Sequence[ScaleCell], mode: str, detail: str) -> Table:
    """Section 2, one mode."""
    table = Table(f"Rendezvous at scale — {mode} ({detail})", [
        "N", "backend", "wall time (median, min–max)", "time vs torch", "CAS tried", "CAS lost",
        "store calls", "server requests", "bytes moved", "per agent", "bytes vs torch"])
    by_n = _baseline_by_n(cells)
    for cell in cells:
        torch = by_n.get(cell.n)
        c = cell.counts
        show = c is not None and cell.ok
        table.add(cell.n, cell.label, _time_cell(cell), time_vs(cell, torch),
                  fmt_num(c.cas) if show else "", fmt_num(c.cas_lost) if show else "",
                  fmt_num(c.ops) if show else "",
                  fmt_num(cell.server_requests) if show and cell.server_requests is not None else "",
                  fmt_bytes(c.bytes_moved) if show else "",
                  fmt_bytes(c.bytes_moved / cell.n) if show else "", bytes_vs(cell, torch))
    return table


def _baseline_by_n(cells: Sequence[ScaleCell | IdleCell | RerdzvCell]) -> dict[int, ScaleCell]:
    return {c.n: c for c in cells if c.label == BASELINE}  # type: ignore[misc]


def idle_table(cells: Sequence[IdleCell], seconds: float, monitor_interval: float) -> Table:
    """Section 3."""
    table = Table(f"Idle load ({seconds:.0f} s window, heartbeats + num_nodes_waiting() every {monitor_interval:g} s)", [
        "N", "backend", "store calls/s", "of which read · write · CAS · add · wait", "payload B/s", "per node B/s",
        "calls vs torch", "bytes vs torch", "B per CAS", "server req/s", "server wire B/s"])
    base = {c.n: c for c in cells if c.label == BASELINE and c.status == "ok"}
    for cell in cells:
        c = cell.counts
        if cell.status != "ok" or c is None:
            table.add(cell.n, cell.label, cell.status, "", "", "", "", "", "", "", "")
            continue
        torch = base.get(cell.n)
        calls = cell.per_second(c.ops)
        moved = cell.per_second(c.bytes_moved)
        vs_calls = vs_bytes = ""
        if torch is not None and torch.counts is not None and cell.label != BASELINE:
            vs_calls = fmt_ratio(ratio(calls, torch.per_second(torch.counts.ops)))
            vs_bytes = fmt_ratio(ratio(moved, torch.per_second(torch.counts.bytes_moved)))
        per_cas = fmt_bytes(c.bytes_sent / c.cas) if c.cas else "–"
        srv_req = srv_bytes = "n/a"
        if cell.server is not None:
            srv_req = fmt_num(cell.per_second(cell.server.requests))
            srv_bytes = fmt_num(cell.per_second(cell.server.bytes_in + cell.server.bytes_out))
        kinds = " · ".join(f"{cell.per_second(v):.1f}" for v in (c.reads, c.writes, c.cas, c.adds, c.waits))
        table.add(cell.n, cell.label, fmt_num(calls), kinds, fmt_num(moved), fmt_num(moved / cell.n), vs_calls,
                  vs_bytes, per_cas, srv_req, srv_bytes)
    table.notes.append("*payload B/s*: values and tokens through the store client API, both directions, same instrument "
                       "on both sides. *B per CAS*: payload sent per state write (a heartbeat, at idle). *server*: "
                       "the store's own counters (Redis `INFO stats`, etcd `/metrics`), incl. protocol framing, "
                       "Pub/Sub fan-out and lease traffic; TCPStore has none.")
    return table


def rerdzv_table(cells: Sequence[RerdzvCell], live: Liveness) -> Table:
    """Section 4."""
    table = Table(f"Re-rendezvous after one agent dies (keep_alive_interval={live.keep_alive_interval} s × "
                  f"{live.keep_alive_max_attempt}, last_call_timeout={live.last_call_timeout} s)", [
        "N", "backend", "time to the new round", "vs torch", "store calls", "bytes moved"])
    base = {c.n: c for c in cells if c.label == BASELINE and c.status == "ok"}
    for cell in cells:
        torch = base.get(cell.n)
        ok = cell.status == "ok"
        vs = fmt_ratio(ratio(cell.seconds, torch.seconds)) if ok and torch is not None and cell.label != BASELINE else ""
        c = cell.counts
        table.add(cell.n, cell.label, fmt_seconds(cell.seconds) if ok else cell.status, vs,
                  fmt_num(c.ops) if ok and c else "", fmt_bytes(c.bytes_moved) if ok and c else "")
    return table


def state_table(rows: Sequence[SizeRow]) -> Table:
    """Section 5."""
    table = Table("State size per write as N grows", [
        "N", "pickled state", "torch blob (base64)", "rdzv frame", "frame / blob", "torch c10d write on the wire",
        "rdzv c10d write", "rdzv Redis/etcd write", "encode µs", "decode µs"])
    for r in rows:
        table.add(r.nodes, fmt_bytes(r.pickle_bytes), fmt_bytes(r.torch_blob), fmt_bytes(r.rdzv_frame),
                  fmt_ratio(r.ratio), fmt_bytes(r.torch_write_wire), fmt_bytes(r.rdzv_c10d_write_wire),
                  fmt_bytes(r.rdzv_kv_write_wire), f"{r.encode_us:.0f}", f"{r.decode_us:.0f}")
    table.notes.append("A heartbeat is one such write (plus the read before it when the cached state is older than "
                       "1 s). *on the wire*: torch's `compare_set` sends the expected (old) blob and the new one and "
                       "receives the current one, 3 blobs; rdzv's c10d adapter has the same shape with frames; the "
                       "Redis and etcd adapters send the frame and get a version number back.")
    return table


def per_node_bytes(cell: IdleCell) -> float:
    """Idle payload bytes per second per node (NaN if not measured)."""
    if cell.status != "ok" or cell.counts is None:
        return math.nan
    return cell.per_second(cell.counts.bytes_moved) / cell.n
