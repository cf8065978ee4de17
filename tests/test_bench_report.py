"""bench/RESULTS.md for ``bench/run --repeat N``: every goal with its figure in each run, met in all of them or not."""

from __future__ import annotations

from bench.report import Line, write


def _run(read_ms: float, lost: int) -> list[Line]:
    return [
        Line("1. Gated read", "median latency, ms", read_ms, 1.0, "ratio <= 1.25", read_ms / 1.0 <= 1.25),
        Line("1. Gated read", "SQL queries per request", 1, 1),
        Line("3. Burst", "lost deliveries", lost, "", "0", lost == 0),
        Line("4. Reconciliation", "list calls", 100, 100, "100", True),
    ]


def test_repeated_runs_show_each_goal_run_by_run(tmp_path):
    output = tmp_path / "RESULTS.md"
    write(output, [_run(1.1, 0), _run(1.3, 0), _run(1.2, 2)], ["3 runs"], "## How it was measured")
    text = output.read_text()
    summary = text.split("## Goals, run by run")[1].split("## Run 1 of 3")[0]
    assert "| 1. Gated read | median latency, ms | ratio <= 1.25 | 1.10 | 1.30 | 1.20 | **no** |" in summary
    assert "| 3. Burst | lost deliveries | 0 | 0 | 0 | 2 | **no** |" in summary
    assert "| 4. Reconciliation | list calls | 100 | 100 | 100 | 100 | yes |" in summary
    assert "SQL queries" not in summary  # no goal, so only in each run's own table
    assert all(f"## Run {n} of 3" in text for n in (1, 2, 3))
