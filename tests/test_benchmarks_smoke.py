"""The benchmarks never rot: ``run_all.py --quick`` runs end to end.

Runs the smoke mode in a subprocess (it starts its own TCPStore server,
redis-server and etcd) into a temporary file — never docs/benchmarks.md —
and checks that every section made it into the report with real figures.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = (
    "## Targets",
    "## Machine",
    "## 1. Overhead of the core",
    "## 2. Rendezvous at scale",
    "## 2b. Rendezvous at scale — processes mode",
    "## 3. Idle load",
    "## 4. Re-rendezvous",
    "## 5. State size",
)
BACKENDS = ("torch c10d", "rdzv c10d", "rdzv redis", "rdzv etcd")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    out = tmp_path_factory.mktemp("bench") / "benchmarks.md"
    before = (ROOT / "docs" / "benchmarks.md").read_bytes() if (ROOT / "docs" / "benchmarks.md").exists() else None
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = (ROOT / "docs" / "benchmarks.md").read_bytes() if (ROOT / "docs" / "benchmarks.md").exists() else None
    assert before == after, "the smoke run must not touch docs/benchmarks.md"
    return out.read_text(), proc.stdout, out


def _table_after(text: str, heading: str) -> list[str]:
    """The table rows (not header or rule) of the first table after ``heading``."""
    rest = text[text.index(heading):]
    rows, seen = [], False
    for line in rest.splitlines()[1:]:
        if line.startswith("|"):
            seen = True
            if not re.match(r"^\|[-| ]+\|$", line):
                rows.append(line)
        elif seen:
            break
    return rows[1:]  # drop the header row


def test_every_section_is_reported(report: tuple[str, str, Path]) -> None:
    text, stdout, _ = report
    for heading in SECTIONS:
        assert heading in text, f"missing {heading!r}"
    assert "--quick" in text
    assert "## Targets" in stdout  # the tables are printed too


def test_sections_hold_numeric_figures(report: tuple[str, str, Path]) -> None:
    text, _, _ = report
    number = re.compile(r"\d+(\.\d+)?\s*(s|µs|B|KiB|MiB|×)?")
    for heading in SECTIONS[2:]:
        rows = _table_after(text, heading)
        assert rows, f"no table rows under {heading!r}"
        assert any(number.search(cell) for row in rows for cell in row.split("|")[3:]), heading


def test_every_backend_is_compared(report: tuple[str, str, Path]) -> None:
    text, _, _ = report
    for heading in ("## 2. Rendezvous at scale", "## 3. Idle load", "## 4. Re-rendezvous"):
        rows = " ".join(_table_after(text, heading))
        for backend in BACKENDS:
            assert f"| {backend} " in rows, (heading, backend)
    scale_rows = _table_after(text, "## 2. Rendezvous at scale")
    ratios = [row for row in scale_rows if "×" in row]
    assert ratios, "the scale table must compare against torch as ratios"
    # torch's own c10d and rdzv's backends completed the tiny rendezvous.
    for backend in BACKENDS:
        row = next(r for r in scale_rows if f"| {backend} " in r)
        assert re.search(r"\|\s*\d+\.\d+ s", row), row


def test_overhead_rows_cover_every_store(report: tuple[str, str, Path]) -> None:
    text, _, _ = report
    rows = " ".join(_table_after(text, "## 1. Overhead of the core"))
    for store in ("TCPStore", "FileStore", "Redis", "etcd"):
        assert f"| {store} " in rows, store


def test_plots_are_written_next_to_the_report(report: tuple[str, str, Path]) -> None:
    text, _, out = report  # matplotlib comes with the test extra: a missing one fails here, never skips
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images
    for image in images:
        assert (out.parent / image).is_file(), image


def test_protocol_torch_targets_stop_where_torchs_handler_timed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # rdzv's protocol=torch runs torch's own handler: once torch's c10d timed
    # out at an N, those targets are skipped there (not run into the same
    # timeout) and count as timed out, not as slower, in the verdicts.
    from benchmarks import scale, verdicts
    from benchmarks.agents import Target
    from benchmarks.join import JoinOutcome

    ran: list[tuple[str, int]] = []

    def run_threads(target: Target, n: int, timeout: float, tcp_pool: object = None, server: object = None) -> JoinOutcome:
        ran.append((target.label, n))
        if target.baseline and n == 64:
            return JoinOutcome("timeout", timeout)
        return JoinOutcome("ok", 0.1 if target.protocol == "scalable" else 1.0)

    monkeypatch.setattr(scale, "run_threads", run_threads)
    targets = [Target("torch-c10d", "x"), Target("redis", "x", "torch"), Target("redis", "x", "scalable")]
    cells = scale.sweep(targets, [8, 64], "threads", lambda n: 1, lambda n: 30.0, log=lambda _: None)
    assert ("rdzv redis", 64) not in ran and ("rdzv redis · scalable", 64) in ran
    skipped = next(c for c in cells if c.label == "rdzv redis" and c.n == 64)
    assert skipped.status == "skipped (torch's handler timed out at N=64)"
    never_slower = [v for v in verdicts.scale(cells, "threads") if v.target == "rdzv redis (threads) never slower than torch c10d"]
    assert [v.status for v in never_slower] == ["met"], never_slower


def test_a_minority_of_timed_out_repetitions_counts_in_the_median(monkeypatch: pytest.MonkeyPatch) -> None:
    # Large N in threads mode is repeated: one repetition stalled by the
    # interpreter's thread hand-offs counts as +inf in the median (and shows
    # in the spread) instead of discarding the runs that completed.
    from benchmarks import report, scale
    from benchmarks.agents import Target
    from benchmarks.join import JoinOutcome

    runs = {"rdzv redis · scalable": ["timeout", 3.0, 4.0, 1.0, 2.0, 3.0], "rdzv c10d · scalable": [2.0, "timeout", "timeout"]}

    def run_threads(target: Target, n: int, timeout: float, tcp_pool: object = None, server: object = None) -> JoinOutcome:
        result = runs[target.label].pop(0)
        return JoinOutcome("timeout", timeout) if result == "timeout" else JoinOutcome("ok", float(result))

    monkeypatch.setattr(scale, "run_threads", run_threads)
    targets = [Target("redis", "x", "scalable"), Target("c10d", "x", "scalable")]
    cells = scale.sweep(targets, [512, 1024], "threads", lambda n: 3, lambda n: 30.0, log=lambda _: None)
    redis = next(c for c in cells if c.label == "rdzv redis · scalable" and c.n == 512)
    assert redis.ok and redis.median == 4.0 and report._time_cell(redis) == "4.00 s (3.00–timeout, n=3)"
    c10d = [c for c in cells if c.label == "rdzv c10d · scalable"]
    assert c10d[0].status == "timeout" and not c10d[0].ok
    assert c10d[1].status == "skipped (after timeout at N=512)"
