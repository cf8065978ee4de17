"""Deliver the sandbox vendors' webhooks to the app over HTTP, as the vendors do: later, from elsewhere.

Deliveries wait ``delay`` seconds on a timer, then go out one at a time from a
single worker thread, so they arrive in the order they were made unless the
``out_of_order`` knob reverses each batch. ``duplicate`` sends every delivery
twice. ``drop_scalekit`` rehearses an outage longer than Scalekit's ~22 minutes
of retries: its deliveries are kept aside, unsent (``release_dropped`` sends
them late, as a last retry would). A failed delivery (no answer or not 2xx) is retried a few times with
growing pauses, as Chargebee and Scalekit retry; nothing is persisted, a
restart forgets what was pending. Headers are built per attempt because a
Standard Webhooks signature covers the time it is sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

logger = logging.getLogger(__name__)

# Out of order needs several deliveries in one batch to reverse, so it holds them at least this long.
OUT_OF_ORDER_WINDOW = 1.0
LOG_SIZE = 100
DROPPED = "dropped: the Scalekit outage knob is on"


@dataclass(frozen=True)
class Delivery:
    vendor: str
    event_id: str
    event_type: str
    url: str
    body: bytes
    headers: Callable[[bytes], dict[str, str]]


@dataclass(frozen=True)
class Attempt:
    """One POST as the sandbox made it, for the delivery log on /sandbox/."""

    at: float
    vendor: str
    event_id: str
    event_type: str
    url: str
    number: int
    status: int | None
    error: str

    @property
    def sent_at(self) -> datetime:
        return datetime.fromtimestamp(self.at, UTC)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Knobs:
    delay: float = 1.0
    duplicate: bool = False
    out_of_order: bool = False
    drop_scalekit: bool = False


class WebhookSender:
    """Send deliveries in the background; ``wait_idle`` blocks until all are done (or given up)."""

    def __init__(self, knobs: Knobs, *, retries: int = 3, retry_pause: float = 2.0, timeout: float = 15.0) -> None:
        self.knobs = knobs
        self.retries = retries
        self.retry_pause = retry_pause
        self.timeout = timeout
        self._lock = threading.Condition()
        self._pending: list[Delivery] = []
        self._timer: threading.Timer | None = None
        self._busy = 0  # deliveries queued, in flight, or waiting for a retry
        self._log: deque[Attempt] = deque(maxlen=LOG_SIZE)
        self._dropped: list[Delivery] = []
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-webhooks")

    def send(self, delivery: Delivery) -> None:
        if delivery.vendor == "scalekit" and self.knobs.drop_scalekit:
            attempt = Attempt(
                time.time(), delivery.vendor, delivery.event_id, delivery.event_type, delivery.url, 0, None, DROPPED
            )
            with self._lock:
                self._dropped.append(delivery)
                self._log.append(attempt)
            return
        self._queue(delivery)

    def _queue(self, delivery: Delivery) -> None:
        window = max(self.knobs.delay, OUT_OF_ORDER_WINDOW if self.knobs.out_of_order else 0)
        with self._lock:
            self._pending.append(delivery)
            self._busy += 1
            if self._timer is None:
                self._timer = threading.Timer(window, self._flush)
                self._timer.daemon = True
                self._timer.start()

    def dropped(self) -> list[Delivery]:
        with self._lock:
            return list(self._dropped)

    def release_dropped(self) -> int:
        """Send the dropped deliveries now (late); returns how many."""
        with self._lock:
            late, self._dropped = self._dropped, []
        for delivery in late:
            self._queue(delivery)
        return len(late)

    def attempts(self) -> list[Attempt]:
        """The most recent attempts, newest first."""
        with self._lock:
            return list(reversed(self._log))

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is pending, in flight or waiting for a retry."""
        with self._lock:
            return self._lock.wait_for(lambda: self._busy == 0, timeout)

    def close(self) -> None:
        """Drop what is pending and stop the worker (tests; the process exiting does the same)."""
        with self._lock:
            if self._timer:
                self._timer.cancel()
            self._pending.clear()
            self._busy = 0
            self._lock.notify_all()
        self._worker.shutdown(wait=False, cancel_futures=True)

    def _flush(self) -> None:
        with self._lock:
            batch, self._pending, self._timer = self._pending, [], None
            if self.knobs.out_of_order:
                batch.reverse()
            copies = 2 if self.knobs.duplicate else 1
            self._busy += len(batch) * (copies - 1)
        for delivery in batch:
            for _ in range(copies):
                self._submit(delivery, 1)

    def _submit(self, delivery: Delivery, number: int) -> None:
        try:
            self._worker.submit(self._deliver, delivery, number)
        except RuntimeError:  # the worker was shut down
            self._done()

    def _deliver(self, delivery: Delivery, number: int) -> None:
        status, error = None, ""
        try:
            response = httpx.post(
                delivery.url, content=delivery.body, headers=delivery.headers(delivery.body), timeout=self.timeout
            )
            status = response.status_code
            if not 200 <= status < 300:
                error = response.text[:200]
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempt = Attempt(
            time.time(), delivery.vendor, delivery.event_id, delivery.event_type, delivery.url, number, status, error
        )
        with self._lock:
            self._log.append(attempt)
        if attempt.ok:
            self._done()
        elif number <= self.retries:
            logger.warning("sandbox webhook %s %s failed (%s), retrying", delivery.vendor, delivery.event_id, error)
            retry = threading.Timer(self.retry_pause * 3 ** (number - 1), self._submit, (delivery, number + 1))
            retry.daemon = True
            retry.start()
        else:
            logger.error("sandbox webhook %s %s given up after %d attempts", delivery.vendor, delivery.event_id, number)
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._busy = max(0, self._busy - 1)
            self._lock.notify_all()
