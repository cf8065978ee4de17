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


def summary(runs: list[list[Line]]) -> str:
    """One row per goal: the figure of every run, and whether the goal was met in all of them."""
    numbers = " | ".join(f"Run {n}" for n in range(1, len(runs) + 1))
    rows = [
        f"| Benchmark | Measure | Goal | {numbers} | Met in every run |",
        "|---|---|---|" + "---:|" * len(runs) + "---|",
    ]
    for index, line in enumerate(runs[0]):
        if line.met is None:
            continue
        figures = [run[index].ratio if line.goal.startswith("ratio") else _cell(run[index].ours) for run in runs]
        every = all(run[index].met for run in runs)
        cells = (line.benchmark, line.measure, line.goal, *figures, "yes" if every else "**no**")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def write(path: Path, runs: list[list[Line]], context: list[str], method: str) -> None:
    """RESULTS.md: where and how it ran, every goal across the runs, each run's table, then how it was measured."""
    body = ["# Benchmark results", "", *[f"- {item}" for item in context], ""]
    if len(runs) > 1:
        note = "Ratios where the goal is a ratio, else the figure."
        body += ["## Goals, run by run", "", note, "", summary(runs), ""]
    for number, lines in enumerate(runs, 1):
        body += [f"## Run {number} of {len(runs)}" if len(runs) > 1 else "## Results", "", table(lines), ""]
    body += [method.strip(), ""]
    path.write_text("\n".join(body))
