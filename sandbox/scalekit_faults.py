"""Faults injected into the fake Scalekit's management API (the sandbox page and tests set them)."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass


@dataclass
class _Fault:
    passes: int  # matching calls still let through first
    remaining: int
    status: int
    path: str


class Hold:
    """A call held before it is applied: it lands once released or after ``seconds``."""

    def __init__(self, seconds: float, path: str) -> None:
        self.seconds, self.path = seconds, path
        self.reached = threading.Event()  # the held call has arrived
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    def wait(self) -> None:
        self.reached.set()
        self._released.wait(self.seconds)


class Faults:
    """Make the next matching API calls fail: ``fail_next(1, 503, after=1)`` fails the second page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._holds: list[Hold] = []
        self.calls: list[tuple[str, str]] = []  # (method, path) of every API call answered or failed
        self._flaky: tuple[float, int, str, random.Random] | None = None

    def fail_randomly(self, ratio: float, status: int = 503, *, path: str = "/api/v1/", seed: int = 0) -> None:
        """Fail this share of the calls to ``path`` (repeatable with ``seed``); ``ratio`` 0 stops it."""
        with self._lock:
            self._flaky = (ratio, status, path, random.Random(seed)) if ratio else None

    def hold_next(self, seconds: float, *, path: str = "/api/v1/") -> Hold:
        """Hold the next call to ``path`` (a prefix) for ``seconds`` before applying it, so a later call lands first."""
        hold = Hold(seconds, path)
        with self._lock:
            self._holds.append(hold)
        return hold

    def take_hold(self, path: str) -> Hold | None:
        with self._lock:
            hold = next((hold for hold in self._holds if path.startswith(hold.path)), None)
            if hold is not None:
                self._holds.remove(hold)
            return hold

    def fail_next(self, count: int, status: int = 503, *, path: str = "/api/v1/", after: int = 0) -> None:
        """``path`` is a prefix of the request path under the environment URL."""
        with self._lock:
            self._faults.append(_Fault(after, count, status, path))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            for hold in self._holds:
                hold.release()
            self._holds.clear()
            self._flaky = None

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self.calls.append((method, path))

    def count(self, method: str, path_prefix: str) -> int:
        with self._lock:
            return sum(1 for m, p in self.calls if m == method and p.startswith(path_prefix))

    def take(self, path: str) -> int | None:
        """The status to fail this call with, or None to answer it."""
        with self._lock:
            fault = next((fault for fault in self._faults if path.startswith(fault.path)), None)
            if fault is None and self._flaky and path.startswith(self._flaky[2]):
                ratio, status, _, chance = self._flaky
                return status if chance.random() < ratio else None
            if fault is None:
                return None
            if fault.passes > 0:
                fault.passes -= 1
                return None
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)
            return fault.status
