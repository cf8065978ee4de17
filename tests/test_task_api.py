"""The tasks import seam: Django's own tasks API on Django 6, the backport on 5.2, and the checks that say which."""

from __future__ import annotations

import django

from orgbilling import task_api, tasks
from orgbilling.checks import check_processing


def test_django_6_uses_its_own_tasks_api_and_5_2_the_backport():
    built_in = django.VERSION >= (6, 0)
    assert task_api.BUILT_IN is built_in
    package = "django.tasks" if built_in else "django_tasks"
    assert type(tasks.process_delivery).__module__ == f"{package}.base"
    assert task_api.INSTALLED_APPS == (("django_tasks_db",) if built_in else ("django_tasks", "django_tasks_db"))


def test_queue_mode_without_a_task_backend_is_an_error_not_a_crash(settings):
    settings.ORGBILLING_PROCESSING = "queue"
    settings.TASKS = {"default": {"BACKEND": "not_installed.Backend"}}
    [error] = check_processing()
    assert error.id == "orgbilling.E012" and "orgbilling[queue]" in error.hint


def test_inline_mode_needs_no_task_backend(settings):
    settings.TASKS = {"default": {"BACKEND": "not_installed.Backend"}}
    assert check_processing() == []
