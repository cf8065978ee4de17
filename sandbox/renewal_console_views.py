"""Sandbox console knob: run ``orgbilling_sync --renewal-estimates`` now.

The sandbox runs inline, where a webhook never calls Chargebee and the next charge of a subscription changed by
the console (renew now, a seat change in the fake) waits for the next ``orgbilling_sync`` run; a demo has no cron,
so this button runs the pass. The command is called by name: the sandbox imports nothing of orgbilling.
"""

from __future__ import annotations

import io

from django.contrib import messages
from django.core.management import call_command
from django.core.management.base import CommandError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST


@require_POST
def next_charges(request: HttpRequest) -> HttpResponse:
    out = io.StringIO()
    try:
        call_command("orgbilling_sync", "--renewal-estimates", stdout=out, stderr=out)
    except CommandError as exc:
        messages.error(request, f"orgbilling_sync --renewal-estimates: {exc}")
    else:
        lines = [line for line in out.getvalue().splitlines() if "renewal estimates" in line]
        messages.success(request, lines[-1] if lines else "orgbilling_sync --renewal-estimates ran.")
    return redirect("sandbox:index")
