"""CPU seconds spent by each kind of process on this machine, from ``/proc``: where a burst's time goes.

The renewal burst is bound by the machine's cores, not by waiting: its web
workers, task workers, PostgreSQL and the load generator share two of them.
Reading their CPU time before and after a phase tells how many milliseconds of
CPU one delivery costs each, which no wall-clock ratio can. Linux only; on
another system every figure is 0.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# The groups reported, matched on the command line (this process: the load generator and the vendor stand-ins).
GROUPS = (("web", "gunicorn"), ("workers", "db_worker"), ("database", "postgres"))
LOAD = "load generator"


def _seconds(pid: str) -> float:
    # Fields 14 and 15 of /proc/<pid>/stat (utime, stime), counted after the command name's closing parenthesis.
    fields = (Path("/proc") / pid / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def snapshot() -> dict[tuple[str, str], float]:
    """CPU seconds so far of every process of a reported group, by (group, pid)."""
    found: dict[tuple[str, str], float] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    me = str(os.getpid())
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            group = LOAD if entry.name == me else next((name for name, word in GROUPS if word in command), None)
            if group is not None:
                found[(group, entry.name)] = _seconds(entry.name)
        except OSError:  # the process ended meanwhile
            continue
    return found


def spent(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> dict[str, float]:
    """CPU seconds each group spent between two snapshots (a process started between them counts from 0)."""
    totals: Counter[str] = Counter({name: 0.0 for name, _ in GROUPS} | {LOAD: 0.0})
    for (group, pid), seconds in after.items():
        totals[group] += seconds - before.get((group, pid), 0.0)
    return dict(totals)
