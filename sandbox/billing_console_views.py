"""Sandbox console knobs for Chargebee's scheduler: renew a subscription now, fail the next charge."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from sandbox import runtime
from sandbox.fake_chargebee_store import ChargebeeApiError


@require_POST
def renewal(request: HttpRequest) -> HttpResponse:
    """``fail_next``: the next charge is declined (a due invoice, payment_failed, dunning); ``renew``: renew now."""
    fake = runtime.chargebee()
    if "fail_next" in request.POST:
        fake.fail_next_charge()
        messages.success(request, "The next charge will fail.")
    sub_id = request.POST.get("subscription_id", "")
    if "renew" in request.POST:
        try:
            invoice = fake.renew_now(sub_id)
        except ChargebeeApiError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Renewed {sub_id}: invoice {invoice['id']} is {invoice['status']}.")
    return redirect("sandbox:index")
