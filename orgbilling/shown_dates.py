"""Dates as the billing page shows them: a ``<time datetime>`` value and the text in the active language.

The same as the template filters ``date:'c'`` and ``date:"DATE_FORMAT"`` (local time, Django's format
for the active language), worked out in Python: a page lists many dates, and each pair of filters costs
more in the template engine than the formatting itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from django.utils import dateformat, timezone
from django.utils.formats import get_format


@dataclass(frozen=True)
class ShownDate:
    iso: str  # for <time datetime="...">
    text: str  # "Jan. 2, 2026", in the active language

    def __str__(self) -> str:
        return self.text


def shown_date(moment: date | datetime | None, date_format: str = "DATE_FORMAT") -> ShownDate | None:
    """``moment`` in local time (aware datetimes), formatted with ``date_format`` (a setting name or a format)."""
    if moment is None:
        return None
    if isinstance(moment, datetime) and timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return ShownDate(moment.isoformat(), dateformat.format(moment, get_format(date_format)))
