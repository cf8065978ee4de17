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
    _install_sleep_counter()  # the real_time marker is registered in pyproject.toml


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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    with _lock:
        _slept[0] = 0.0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Fail the test itself (setup and call counted) when it slept over the budget."""
    result = yield
    slept = _slept[0]
    if slept > SLEEP_BUDGET and item.get_closest_marker("real_time") is None:
        pytest.fail(
            f"slept {slept:.2f}s (budget {SLEEP_BUDGET}s): inject a clock or a sleeper, "
            "or mark a worker/process fault test real_time",
            pytrace=False,
        )
    return result


@pytest.fixture(autouse=True)
def gateway_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The Chargebee gateway's waits between retries (429's Retry-After among them), recorded, not slept."""
    from orgbilling import chargebee_gateway

    slept: list[float] = []
    monkeypatch.setattr(chargebee_gateway, "pause", slept.append)
    return slept


@pytest.fixture(autouse=True)
def worker_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A queue worker's lingers between claims (``ORGBILLING_QUEUE_LINGER``), recorded, not slept."""
    from orgbilling import tasks

    waits: list[float] = []
    monkeypatch.setattr(tasks, "pause", waits.append)
    return waits


class Clock:
    """Wall and monotonic time that a test moves forward instead of sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A clock for the JWKS key client's refetch cooldown (PyJWT) and orgbilling's token memory."""
    import types

    import jwt.jwk_set_cache
    import jwt.jwks_client

    from orgbilling import scalekit_auth

    fake = Clock()
    now = types.SimpleNamespace(time=fake.time, monotonic=fake.monotonic)
    for module in (jwt.jwks_client, jwt.jwk_set_cache, scalekit_auth):
        monkeypatch.setattr(module, "time", now)
    return fake
