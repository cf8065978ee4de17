"""The database check of the plan catalog: offered prices Chargebee does not sell.

``manage.py check --database default`` runs it (tags ``orgbilling`` and
``database``); plain ``check``, ``runserver`` and the WSGI start do not pass a
database, so it returns nothing there. ``migrate`` passes its database to the
checks too, before its tables may even exist: this check stays out of it (a
fresh install migrates before its first ``orgbilling_sync --prices``).

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


def _run_by_migrate() -> bool:
    """Whether the checks are running inside ``migrate`` (Django gives them no other sign)."""
    frame = sys._getframe(1)
    while frame is not None:
        # BaseCommand.execute (in base.py) runs the checks; its ``self`` is the migrate command.
        command = frame.f_locals.get("self")
        if type(command).__module__ == "django.core.management.commands.migrate":
            return True
        frame = frame.f_back
    return False


@checks.register(TAG, checks.Tags.database)
def check_offered_prices(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    if not databases or "default" not in databases or _run_by_migrate():
        return []
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
