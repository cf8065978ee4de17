"""The throttle's counter: one atomic increment per Chargebee-calling action, shared by every process.

A budget only holds if every process counts in the same place, atomically.
By default the counter is Redis (``INCR`` in a ``MULTI`` with the window's
expiry) when ``REDIS_URL`` is set, and otherwise a database row
(``INSERT ... ON CONFLICT DO UPDATE SET count = count + 1 RETURNING count``,
PostgreSQL and SQLite). Django's cache API is not enough: the default
local-memory cache counts per process (two gunicorn workers double the
budget) and the database cache's ``incr`` is a read then a write. A project
may still name a Django cache in ``ORGBILLING_THROTTLE_CACHE``; system check
``orgbilling.W020`` warns when ``DEBUG`` is off and that cache is not shared
and atomic.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from django.conf import settings
from django.core import checks
from django.core.cache import caches
from django.db import connection
from django.utils import timezone

from . import conf
from .models import ThrottleCounter

# Django cache backends whose incr is atomic and shared between processes.
SHARED_ATOMIC_CACHES = ("django.core.cache.backends.redis.", "django.core.cache.backends.memcached.")


@cache
def _redis(url: str):  # -> redis.Redis, imported only when configured
    import redis

    return redis.Redis.from_url(url)


def _redis_incr(url: str, key: str, period: int) -> int:
    pipe = _redis(url).pipeline(transaction=True)
    pipe.set(key, 0, ex=period + 1, nx=True)
    pipe.incr(key)
    return int(pipe.execute()[1])


def _database_incr(key: str, period: int) -> int:
    now = timezone.now()
    table, key_column, count, expires = (
        connection.ops.quote_name(name) for name in (ThrottleCounter._meta.db_table, "key", "count", "expires_at")
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({key_column}, {count}, {expires}) VALUES (%s, 1, %s) "
            f"ON CONFLICT ({key_column}) DO UPDATE SET {count} = {table}.{count} + 1 RETURNING {count}",
            [key, now + timedelta(seconds=period + 1)],
        )
        hits = cursor.fetchone()[0]
    if hits == 1:  # the first hit of a window: drop the windows that have ended
        ThrottleCounter.objects.filter(expires_at__lt=now).delete()
    return hits


def _cache_incr(alias: str, key: str, period: int) -> int:
    counters = caches[alias]
    counters.add(key, 0, timeout=period + 1)
    try:
        return counters.incr(key)
    except ValueError:  # the key expired between add and incr
        counters.set(key, 1, timeout=period + 1)
        return 1


def incr(key: str, period: int) -> int:
    """Count one hit on ``key`` in a window of ``period`` seconds; return the hits so far in it."""
    alias = conf.get("ORGBILLING_THROTTLE_CACHE")
    if alias:
        return _cache_incr(alias, key, period)
    url = conf.get("REDIS_URL")
    if url:
        return _redis_incr(url, key, period)
    return _database_incr(key, period)


@checks.register("orgbilling")
def check_throttle_counter(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Warn when, in production, the throttle would count per process (or not atomically)."""
    alias = conf.get("ORGBILLING_THROTTLE_CACHE")
    if settings.DEBUG or not alias or not conf.get("ORGBILLING_THROTTLE_RATE"):
        return []
    backend = settings.CACHES.get(alias, {}).get("BACKEND", "")
    if backend.startswith(SHARED_ATOMIC_CACHES):
        return []
    return [
        checks.Warning(
            f"ORGBILLING_THROTTLE_CACHE names cache {alias!r} ({backend or 'not configured'}), which counts per "
            "process or not atomically: each server process gets its own Chargebee budget.",
            hint="Leave ORGBILLING_THROTTLE_CACHE empty (Redis when REDIS_URL is set, else a database row), "
            "or name a Redis or Memcached cache.",
            id="orgbilling.W020",
        )
    ]
