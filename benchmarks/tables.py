"""Plain tables that print on a terminal and render in Markdown alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence


@dataclass
class Table:
    """A titled table with an optional note under it."""

    title: str
    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        """Append one row."""
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        """A GitHub-flavoured Markdown table, columns padded for the terminal."""
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

        align = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        out = [line(self.headers), align, *(line(r) for r in self.rows)]
        return "\n".join(out)

    def render(self, level: int = 3) -> str:
        """Title, table and notes as a Markdown block."""
        parts = [f"{'#' * level} {self.title}", "", self.markdown()]
        if self.notes:
            parts += [""] + [f"{note}" for note in self.notes]
        return "\n".join(parts) + "\n"
