"""Faults injected into the fake Scalekit's management API (the sandbox page and tests set them)."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class _Fault:
    passes: int  # matching calls still let through first
    remaining: int
    status: int
    path: str


class Faults:
    """Make the next matching API calls fail: ``fail_next(1, 503, after=1)`` fails the second page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []

    def fail_next(self, count: int, status: int = 503, *, path: str = "/api/v1/", after: int = 0) -> None:
        """``path`` is a prefix of the request path under the environment URL."""
        with self._lock:
            self._faults.append(_Fault(after, count, status, path))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, path: str) -> int | None:
        """The status to fail this call with, or None to answer it."""
        with self._lock:
            fault = next((fault for fault in self._faults if path.startswith(fault.path)), None)
            if fault is None:
                return None
            if fault.passes > 0:
                fault.passes -= 1
                return None
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)
            return fault.status
