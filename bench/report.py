"""The results table: one line per figure, each beside its baseline, written as markdown."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Line:
    benchmark: str
    measure: str
    ours: float | int | str
    baseline: float | int | str = ""
    goal: str = ""
    met: bool | None = None  # None: no goal

    @property
    def ratio(self) -> str:
        if isinstance(self.ours, (int, float)) and isinstance(self.baseline, (int, float)) and self.baseline:
            return f"{self.ours / self.baseline:.2f}"
        return ""


def _cell(value: float | int | str) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if value < 100 else f"{value:.0f}"
    return str(value)


def table(lines: list[Line]) -> str:
    rows = [
        "| Benchmark | Measure | orgbilling | Baseline | Ratio | Goal | Met |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for line in lines:
        met = "" if line.met is None else ("yes" if line.met else "**no**")
        cells = (line.benchmark, line.measure, _cell(line.ours), _cell(line.baseline), line.ratio, line.goal, met)
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def write(path: Path, lines: list[Line], context: list[str], method: str) -> None:
    """RESULTS.md: where and how it ran, the table, then how each figure was measured."""
    body = ["# Benchmark results", "", *[f"- {item}" for item in context], "", table(lines), "", method.strip(), ""]
    path.write_text("\n".join(body))
