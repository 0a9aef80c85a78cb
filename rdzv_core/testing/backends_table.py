"""Reading the table ``rdzv backends`` prints, column by column (for tests)."""

from __future__ import annotations

#: The header ``rdzv backends`` prints, one name per column.
BACKENDS_HEADER = ["backend", "rdzv-run names", "torchrun names", "distribution", "version", "contract", "capabilities",
                   "status"]


def table_rows(text: str) -> list[list[str]]:
    """The rows of ``text`` (header first) split into cells, each cell from
    where its column's header starts (the last column runs to the line's end).

    Raises ``AssertionError`` when the header is not :data:`BACKENDS_HEADER`
    in that order or a cell runs into the next column (misaligned output).
    """
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    assert header.split() == " ".join(BACKENDS_HEADER).split(), f"unexpected header: {header!r}"
    starts = [header.index(name) for name in BACKENDS_HEADER]
    assert starts == sorted(starts) and starts[0] == 0, header
    ends = [*starts[1:], None]
    rows = []
    for line in lines:
        cells = [line[start:end] for start, end in zip(starts, ends)]
        assert all(cell.endswith(" ") for cell in cells[:-1]), f"misaligned row: {line!r}"
        rows.append([cell.strip() for cell in cells])
    return rows
