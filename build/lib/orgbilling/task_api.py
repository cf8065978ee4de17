"""The one place orgbilling imports the tasks API from.

Django 6.0 ships the tasks framework as ``django.tasks``; on Django 5.2 the
same API comes from its backport, the ``django-tasks`` package. The database
backend (``django-tasks-db``) works with either: on 6.x it builds on
``django.tasks`` and the backport is not installed at all (the ``queue``
extra pulls it in for 5.2 only). Everything else in orgbilling, and its
tests, imports from here, so the day 5.2 is dropped this module is the only
one to change.
"""

from __future__ import annotations

try:
    from django.tasks import task

    BUILT_IN = True
except ImportError:  # Django 5.2: the backport
    from django_tasks import task  # type: ignore[no-redef]  (ImportError without the queue extra)

    BUILT_IN = False

_PACKAGE = "django.tasks" if BUILT_IN else "django_tasks"

# What queue mode adds to INSTALLED_APPS: the backport is an app of its own; Django's built-in one is not.
INSTALLED_APPS: tuple[str, ...] = ("django_tasks_db",) if BUILT_IN else ("django_tasks", "django_tasks_db")
DATABASE_BACKEND = "django_tasks_db.DatabaseBackend"
# Runs a task at once, in the enqueuing process; cannot run one later (``run_after``).
IMMEDIATE_BACKEND = f"{_PACKAGE}.backends.immediate.ImmediateBackend"

__all__ = ["BUILT_IN", "DATABASE_BACKEND", "IMMEDIATE_BACKEND", "INSTALLED_APPS", "task"]
