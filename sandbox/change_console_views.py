"""Sandbox console knobs for previewed changes: decline the next change's payment, ask for 3-D Secure, move time."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from sandbox import runtime

MAX_DAYS = 400


@require_POST
def change_knobs(request: HttpRequest) -> HttpResponse:
    """``decline`` / ``decline_keep``: the next change charging a card is declined (nothing changed / the change
    kept with an unpaid invoice); ``needs_3ds``: it needs 3-D Secure; ``days``: the fake's clock moves forward."""
    fake = runtime.chargebee()
    if "decline" in request.POST:
        fake.decline_next_change()
        messages.success(request, "The next change's payment will be declined; nothing will change.")
    elif "decline_keep" in request.POST:
        fake.decline_next_change(keep_change=True)
        messages.success(request, "The next change's payment will be declined; the change stays, its invoice unpaid.")
    elif "needs_3ds" in request.POST:
        fake.require_authentication_next_change()
        messages.success(request, "The next change's payment will need 3-D Secure (the hosted page takes over).")
    elif "advance" in request.POST:
        try:
            days = float(request.POST.get("days", ""))
        except ValueError:
            days = -1
        if not 0 < days <= MAX_DAYS:
            messages.error(request, f"Move the clock by 1 to {MAX_DAYS} days.")
        else:
            fake.advance_clock(days * 86400)
            messages.success(request, f"Chargebee's clock moved {days:g} day(s) forward (proration counts from it).")
    return redirect("sandbox:index")
