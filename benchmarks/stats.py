"""Small statistics and formatting helpers shared by every benchmark."""

from __future__ import annotations

import math
import statistics
from typing import Iterable, Sequence


def median(values: Iterable[float]) -> float:
    """The median (NaN for no values)."""
    data = list(values)
    return statistics.median(data) if data else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), nearest-rank."""
    data = sorted(values)
    if not data:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(data)))
    return data[min(rank, len(data)) - 1]


def spread(values: Sequence[float]) -> tuple[float, float]:
    """``(min, max)`` of ``values`` (NaNs for none)."""
    data = [v for v in values if not math.isnan(v)]
    return (min(data), max(data)) if data else (math.nan, math.nan)


def ratio(ours: float, theirs: float) -> float:
    """``ours / theirs`` (NaN when undefined)."""
    if theirs is None or ours is None or theirs == 0 or math.isnan(theirs) or math.isnan(ours):
        return math.nan
    return ours / theirs


def fmt_ratio(value: float) -> str:
    """``1.07×`` (or ``–`` when undefined)."""
    return "–" if value is None or math.isnan(value) else f"{value:.2f}×"


def fmt_num(value: float, digits: int = 1) -> str:
    """A number with thousands separators, or ``–``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def fmt_bytes(value: float) -> str:
    """Bytes with a binary unit (``12.3 KiB``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def fmt_seconds(value: float) -> str:
    """Seconds with sensible precision."""
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"
