"""The database check of the plan catalog: offered prices Chargebee does not sell.

``manage.py check --database default`` runs it (tags ``orgbilling`` and
``database``), and nothing else does. Django gives a check no sign of who
runs it: ``migrate`` passes its database too, before the tables may even
exist (a fresh install migrates before its first ``orgbilling_sync
--prices``), and Django 6.1 passes every database whenever checks are run by
tag (``check --tag orgbilling``, the WSGI start). So the registered check
looks for the ``check`` command and its ``--database`` option on the call
stack; ``offered_price_problems`` is the check itself, for callers who know.

* ``orgbilling.W030``: an ``ORGBILLING_PLANS`` price is missing from the local
  mirror or archived/deleted in Chargebee; the page hides it.
* ``orgbilling.E030``: no configured price is on offer at all: nobody can
  subscribe (a warning while ``DEBUG`` is on, like every ``E0xx``).
"""

from __future__ import annotations

import sys

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

TAG = "orgbilling"
HINT = (
    "Run `manage.py orgbilling_sync --prices` to mirror Chargebee's item prices, and make sure each ORGBILLING_PLANS "
    "id is an active plan item price in Chargebee (Product Catalog > Plans)."
)


def _asked_by_check_database() -> bool:
    """Whether ``manage.py check --database ...`` is running the checks (see the module docstring)."""
    frame = sys._getframe(1)
    while frame is not None:
        # The check command's handle() holds its parsed options (BaseCommand.check(), nearer, does not).
        command, options = frame.f_locals.get("self"), frame.f_locals.get("options")
        if type(command).__module__ == "django.core.management.commands.check" and isinstance(options, dict):
            return bool(options.get("databases"))
        frame = frame.f_back
    return False


@checks.register(TAG, checks.Tags.database)
def check_offered_prices(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    if not databases or "default" not in databases or not _asked_by_check_database():
        return []
    return offered_price_problems()


def offered_price_problems() -> list[checks.CheckMessage]:
    """W030 for each ``ORGBILLING_PLANS`` price Chargebee does not sell, E030 when none is on offer (reads the DB)."""
    from .plans import catalog, unavailable

    try:
        configured = catalog()
        if not configured:
            return []  # orgbilling.E006 says there is nothing to offer
        missing = unavailable()
    except ImproperlyConfigured:
        return []  # orgbilling.E009 reports the setting
    except DatabaseError as exc:
        return [
            checks.Warning(f"The price catalog could not be read: {exc}", hint="Run migrate.", id="orgbilling.W030")
        ]
    problems: list[checks.CheckMessage] = [
        checks.Warning(
            f"Offered plan {price_id!r} is {why}: the billing page hides it.", hint=HINT, id="orgbilling.W030"
        )
        for price_id, why in missing
    ]
    if len(missing) == len(configured):
        level = checks.Warning if settings.DEBUG else checks.Error
        problems.append(
            level("No plan in ORGBILLING_PLANS is on offer: nobody can subscribe.", hint=HINT, id="orgbilling.E030")
        )
    return problems
