"""The burst's CPU accounting (``bench/cpu.py``): what each kind of process spent between two snapshots."""

from __future__ import annotations

import os
import sys

import pytest

from bench import cpu


def test_each_group_is_charged_what_its_processes_spent_a_new_process_from_zero():
    before = {("web", "10"): 1.0, ("workers", "20"): 4.0}
    after = {("web", "10"): 1.5, ("web", "11"): 0.25, ("workers", "20"): 4.0, (cpu.LOAD, "30"): 2.0}
    assert cpu.spent(before, after) == {"web": 0.75, "workers": 0.0, "database": 0.0, cpu.LOAD: 2.0}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_this_process_is_the_load_generator_and_its_cpu_time_grows():
    key = (cpu.LOAD, str(os.getpid()))
    before = after = cpu.snapshot()
    for _ in range(200):  # CPU work (no waiting) until a clock tick shows it: a few at most
        sum(number * number for number in range(200_000))
        after = cpu.snapshot()
        if after[key] > before[key]:
            break
    assert after[key] > before[key]
    assert cpu.spent(before, after)[cpu.LOAD] == after[key] - before[key]
