"""Bookkeeping for recurring jobs: a lease so one runs at a time, and the record of each outcome.

The lease is a row whose ``expires_at`` is taken over only once it has
passed, with one conditional UPDATE: PostgreSQL re-checks the condition after
a concurrent writer commits and SQLite serializes writers, so two runs never
both win. A run renews its lease as it makes progress; one that dies leaves a
lease that lapses on its own.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError
from django.utils import timezone

from .models import JobLock, JobRecord

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # "free": any lease that ends before now can be taken


class Busy(Exception):
    """Another run holds the lease."""

    def __init__(self, name: str, holder: str, acquired_at: datetime | None, expires_at: datetime):
        since = acquired_at.isoformat(timespec="seconds") if acquired_at else "unknown"
        super().__init__(
            f"another {name} run is in progress ({holder or 'unknown holder'}, since {since}; its lease ends"
            f" {expires_at.isoformat(timespec='seconds')} unless renewed): not starting"
        )


class Lease:
    """A held lease; ``renew()`` is cheap to call often (it writes at most every third of the lease)."""

    def __init__(self, name: str, holder: str, seconds: float):
        self.name, self.holder, self.seconds = name, holder, seconds
        self.renewed_at = timezone.now()

    def renew(self) -> None:
        now = timezone.now()
        if (now - self.renewed_at).total_seconds() < self.seconds / 3:
            return
        JobLock.objects.filter(name=self.name, holder=self.holder).update(
            expires_at=now + timedelta(seconds=self.seconds)
        )
        self.renewed_at = now


def acquire(name: str, seconds: float) -> Lease:
    """Take the lease ``name`` for ``seconds`` (renewable), or raise ``Busy``."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    try:
        JobLock.objects.get_or_create(name=name, defaults={"expires_at": EPOCH})
    except IntegrityError:  # created concurrently: it exists now, which is all this needed
        pass
    now = timezone.now()
    taken = JobLock.objects.filter(name=name, expires_at__lt=now).update(
        holder=holder, acquired_at=now, expires_at=now + timedelta(seconds=seconds)
    )
    if not taken:
        current = JobLock.objects.get(name=name)
        raise Busy(name, current.holder, current.acquired_at, current.expires_at)
    return Lease(name, holder, seconds)


def release(lease: Lease) -> None:
    JobLock.objects.filter(name=lease.name, holder=lease.holder).update(holder="", expires_at=EPOCH)


@contextmanager
def held(name: str, seconds: float) -> Iterator[Lease]:
    lease = acquire(name, seconds)
    try:
        yield lease
    finally:
        release(lease)


def record_start(name: str) -> None:
    JobRecord.objects.update_or_create(name=name, defaults={"last_started_at": timezone.now()})


def record_outcome(name: str, *, ok: bool, summary: str, full: bool = False, findings: list | None = None) -> None:
    """Store how a run of ``name`` ended; ``full`` marks a run that also looked for what is gone."""
    now = timezone.now()
    values: dict = {"last_summary": summary[:2000]}
    if ok:
        values.update(last_succeeded_at=now, last_error="")
        if full:
            values["last_full_succeeded_at"] = now
    else:
        values.update(last_failed_at=now, last_error=summary[:2000])
    if findings is not None:
        values["findings"] = findings
    JobRecord.objects.update_or_create(name=name, defaults=values)
