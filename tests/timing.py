"""How long the suite may take: hypothesis profiles, ``--fuzz``, and the guard against tests that sleep.

* Property tests run with few examples by default; ``bin/test --fuzz`` runs only
  them, with 5,000 examples each (``.ci/run`` does it once, on PostgreSQL).
* A test whose code (or a server thread it started) sleeps more than
  ``SLEEP_BUDGET`` seconds in total fails, unless it is marked ``real_time``:
  the worker and process fault tests, which must wait for other processes. The
  others inject a clock or a sleeper instead of waiting.
"""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = 5_000
DEFAULT_EXAMPLES = 50
SLEEP_BUDGET = 0.05  # seconds of time.sleep per test

_common = {"deadline": None, "suppress_health_check": list(HealthCheck)}
settings.register_profile("default", max_examples=DEFAULT_EXAMPLES, **_common)
settings.register_profile("fuzz", max_examples=FUZZ_EXAMPLES, **_common)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz", action="store_true", help=f"run only the property tests, with {FUZZ_EXAMPLES} examples each"
    )


def pytest_configure(config: pytest.Config) -> None:
    settings.load_profile("fuzz" if config.getoption("fuzz") else "default")
    config.addinivalue_line(
        "markers", "real_time: may sleep for real (waits on worker processes); exempt from the sleep guard"
    )
    _install_sleep_counter()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("fuzz"):
        return
    keep = [item for item in items if getattr(getattr(item, "obj", None), "is_hypothesis_test", False)]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


# Seconds slept since the current test started, by any thread (a fake vendor's server thread sleeps for
# the test that asked it to). time.sleep is replaced once; code that looks it up when it sleeps is counted.
_slept = [0.0]
_lock = threading.Lock()


def _install_sleep_counter() -> None:
    real_sleep = time.sleep
    if getattr(real_sleep, "counted", False):
        return

    def counted_sleep(seconds: float) -> None:
        with _lock:
            _slept[0] += max(seconds, 0)
        real_sleep(seconds)

    counted_sleep.counted = True  # type: ignore[attr-defined]
    time.sleep = counted_sleep


@pytest.fixture(autouse=True)
def _sleep_guard(request: pytest.FixtureRequest):
    with _lock:
        _slept[0] = 0.0
    yield
    slept = _slept[0]
    if slept > SLEEP_BUDGET and request.node.get_closest_marker("real_time") is None:
        pytest.fail(
            f"slept {slept:.2f}s (budget {SLEEP_BUDGET}s): inject a clock or a sleeper, "
            "or mark a worker/process fault test real_time",
            pytrace=False,
        )
