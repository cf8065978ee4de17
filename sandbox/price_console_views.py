"""Sandbox console: change a plan price, its trial, or archive it, as in Chargebee's Product Catalog.

Each change records ``item_price_updated`` (archiving too), sent to the app as a webhook, so the billing
page shows the new price once the app has mirrored it.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from sandbox import runtime
from sandbox.fake_chargebee_store import ChargebeeApiError

MAX_PRICE = 10**12


def _whole(value: str, low: int, high: int) -> int | None:
    try:
        number = int(value)
    except ValueError:
        return None
    return number if low <= number <= high else None


@require_POST
def item_price(request: HttpRequest) -> HttpResponse:
    """``archive``: no longer sold; ``save``: the price (minor units, per seat or flat) and trial days."""
    fake = runtime.chargebee()
    price_id = request.POST.get("item_price_id", "")
    try:
        if "archive" in request.POST:
            fake.archive_item_price(price_id)
            messages.success(request, f"Archived {price_id}: item_price_updated sent.")
            return redirect("sandbox:index")
        current = fake.get_item_price(price_id) or {}
        fields: dict = {}
        if request.POST.get("price", "") != "" and "price" in current:
            fields["price"] = _whole(request.POST["price"], 0, MAX_PRICE)
        if request.POST.get("trial_days", "") != "":
            days = _whole(request.POST["trial_days"], 0, 365)
            fields.update(trial_period=days, trial_period_unit="day")
        if None in fields.values() or not fields:
            messages.error(request, "Give a whole price in minor units and/or trial days from 0 to 365.")
            return redirect("sandbox:index")
        fake.update_item_price(price_id, **fields)
    except ChargebeeApiError as exc:
        messages.error(request, exc.message)
        return redirect("sandbox:index")
    messages.success(request, f"Changed {price_id}: item_price_updated sent.")
    return redirect("sandbox:index")
