"""The suite's own speed rules (tests/timing.py): sleeping tests fail, and hypothesis profiles."""

from __future__ import annotations

import pytest
from hypothesis import settings

from tests import timing

pytest_plugins = ["pytester"]

SLEEPERS = """
import time

import pytest


def test_sleeps():
    time.sleep(0.06)


@pytest.mark.real_time
def test_waits_for_a_worker():
    time.sleep(0.06)


def test_naps_briefly():
    time.sleep(0.01)
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_sleepers=SLEEPERS)
    return pytester.runpytest_inprocess("-p", "tests.timing", "-p", "no:django", "-p", "no:randomly", *args)


def test_a_test_that_sleeps_fails_unless_marked_real_time(pytester):
    result = run(pytester)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_sleeps*slept 0.06s (budget 0.05s)*"])


def test_the_default_profile_runs_fewer_examples_and_fuzz_runs_5000(pytester):
    assert settings.default.max_examples == timing.DEFAULT_EXAMPLES < timing.FUZZ_EXAMPLES == 5_000
    pytester.makepyfile(
        test_property="""
from hypothesis import given, settings, strategies as st

MAX_EXAMPLES = settings.default.max_examples  # the profile pytest_configure loaded

def test_plain():
    pass

@given(st.just(1))
def test_property(n):
    assert MAX_EXAMPLES == 5000
"""
    )
    result = pytester.runpytest_inprocess("-p", "tests.timing", "-p", "no:django", "-p", "no:randomly", "--fuzz")
    result.assert_outcomes(passed=1, deselected=1)
    settings.load_profile("default")  # the in-process run loaded the fuzz profile
