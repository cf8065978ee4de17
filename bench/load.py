"""The load generator: threads sending a fixed list of requests over http.client to 127.0.0.1.

A fixed list, not a duration, so every loop is bounded and both sides of a
comparison get exactly the same requests. One connection per request:
gunicorn's sync workers close it after each answer anyway.
"""

from __future__ import annotations

import base64
import http.client
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .stack_depth import HEADER, depth_of

TIMEOUT = 30  # seconds for one request; a hung server fails the run instead of stalling it


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    status: int
    seconds: float
    queries: int
    connects: int


def basic_auth(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def send(port: int, request: Request) -> Result:
    """One request on a fresh connection, timed from connect to the last byte of the answer."""
    headers = {"Content-Type": "application/json", **request.headers} if request.body else request.headers
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(request.method, request.path, request.body, headers)
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    seconds = time.perf_counter() - started
    return Result(
        response.status,
        seconds,
        int(response.getheader("X-Bench-Queries", "-1")),
        int(response.getheader("X-Bench-Connects", "-1")),
    )


def run(port: int, requests: Sequence[Request], concurrency: int = 1) -> list[Result]:
    """Send every request once, ``concurrency`` at a time; results in the order of ``requests``."""
    results: list[Result | None] = [None] * len(requests)
    errors: list[BaseException] = []
    next_index = iter(range(len(requests)))
    lock = threading.Lock()

    def worker() -> None:
        while not errors:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            try:
                results[index] = send(port, requests[index])
            except Exception as exc:  # noqa: BLE001  re-raised in the caller's thread
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(min(concurrency, len(requests)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [result for result in results if result is not None]


def alternate(port: int, ours: Sequence[Request], baseline: Sequence[Request], rounds: int = 5) -> tuple[list, list]:
    """Send both lists one request at a time, in interleaved chunks, switching which goes first.

    Noise on a shared machine (another process, a CPU frequency change) then
    hits both sides alike instead of whichever ran during it.
    """
    ours_results: list[Result] = []
    base_results: list[Result] = []
    for number in range(rounds):
        chunk = slice(number * len(ours) // rounds, (number + 1) * len(ours) // rounds)
        base_chunk = slice(number * len(baseline) // rounds, (number + 1) * len(baseline) // rounds)
        pair = [(ours[chunk], ours_results), (baseline[base_chunk], base_results)]
        for requests, sink in pair if number % 2 == 0 else reversed(pair):
            sink.extend(run(port, requests))
    return ours_results, base_results


def at_depths(requests: Sequence[Request]) -> list[Request]:
    """The requests, each naming the stack depth the server runs it at (``bench.stack_depth``), in turn."""
    return [
        replace(request, headers={**request.headers, HEADER: str(depth_of(number))})
        for number, request in enumerate(requests)
    ]


def median_ms(results: Sequence[Result]) -> float:
    return statistics.median(result.seconds for result in results) * 1000


def check_statuses(results: Sequence[Result], allowed: set[int], what: str) -> None:
    """A benchmark of failing requests measures nothing: stop with the statuses seen."""
    seen = {result.status for result in results}
    if not seen <= allowed:
        raise RuntimeError(f"{what}: unexpected HTTP statuses {sorted(seen - allowed)}")
