"""Timing a request at a spread of stack depths, so neither side of a comparison is timed at one lucky depth.

CPython (3.11 to 3.13 here) keeps Python frames in 16 KiB chunks and, until python/cpython#142183 was fixed (3.15,
backported to 3.14), frees a chunk whenever the stack pops back out of it: code that calls in a loop right at a chunk
boundary maps and unmaps memory on every call. The same render of /billing took 2.2 to 6.1 ms here depending only on
how many frames sat below it, and a 20,000-call loop 0.6 ms, or 150 ms at depths 133 and 269. Where a request's
loops fall depends on the server's own stack (gunicorn, the test client, the middleware chain), so a ratio measured
at one depth is partly luck. Benchmarks pad each request with ``padded`` by a depth from ``PADDING``, which steps
through a whole chunk's worth of these frames (about 133), the same depths for both sides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

PADDING = range(140)
HEADER = "X-Bench-Depth"  # the depth a bench server pads a request with (bench.probe.ProbeMiddleware)

T = TypeVar("T")


def padded(depth: int, call: Callable[[], T]) -> T:
    """``call()`` with ``depth`` more Python frames below it."""
    return padded(depth - 1, call) if depth > 0 else call()


def depth_of(number: int) -> int:
    """The padding of the ``number``-th request of a series."""
    return PADDING[number % len(PADDING)]
