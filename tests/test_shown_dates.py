"""Dates the billing page works out in Python read as the template filters ``date:'c'`` and ``date:"DATE_FORMAT"``."""

from __future__ import annotations

from datetime import UTC, date, datetime

from django.template import Context, Template
from django.utils import timezone, translation

from orgbilling.shown_dates import shown_date

FILTERS = Template("{{ moment|date:'c' }}|{{ moment|date:'DATE_FORMAT' }}")


def test_a_moment_is_shown_in_local_time_and_the_active_language():
    moment = datetime(2031, 3, 14, 23, 30, tzinfo=UTC)  # already the 15th in Berlin
    with translation.override("de"), timezone.override("Europe/Berlin"):
        shown = shown_date(moment)
        assert f"{shown.iso}|{shown.text}" == FILTERS.render(Context({"moment": moment}))
    assert (shown.iso, shown.text) == ("2031-03-15T00:30:00+01:00", "15. März 2031")


def test_a_day_and_nothing():
    with translation.override("en-us"):
        shown = shown_date(date(2031, 3, 14))
        assert f"{shown.iso}|{shown.text}" == FILTERS.render(Context({"moment": date(2031, 3, 14)}))
    assert str(shown) == "March 14, 2031" and shown_date(None) is None
