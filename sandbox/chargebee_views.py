"""The fake Chargebee inside Django: its HTTP API, and the hosted pages a customer sees.

The API is the framework-free WSGI app of ``fake_chargebee`` mounted under
``/sandbox/chargebee/api/v2``, so the app's gateway talks to it through the
real SDK exactly as to Chargebee. The fake answers checkouts with
``{site}/pages/v3/<id>/`` and portal sessions with
``{site}/portal/v2/access/<token>``, where the site is ``/sandbox/chargebee``
on this server: those two pages are here, playing the customer's side.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from sandbox import outbound, runtime
from sandbox.fake_chargebee_store import ChargebeeApiError

PORTAL_ACTIONS = ("seats", "cancel_now", "cancel_end", "return")


@csrf_exempt
def api(request: HttpRequest) -> HttpResponse:
    """Hand the request to the fake's WSGI app and relay its answer (no CSRF: the API key authenticates)."""
    body = request.body
    environ = {**request.META, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer.update(status=int(status.split()[0]), headers=headers)

    payload = b"".join(runtime.chargebee()(environ, start_response))
    response = HttpResponse(payload, status=answer["status"])
    for name, value in answer["headers"]:
        response[name] = value
    return response


def _error(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    return render(request, "sandbox/error.html", {"vendor": "Chargebee", "message": message}, status=status)


def _money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def _when(timestamp: int | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else None


def describe(sub: dict[str, Any]) -> dict[str, Any]:
    """What the sandbox pages show of a subscription: its plan, seats, status and dates."""
    plan = next((item for item in sub["subscription_items"] if item["item_type"] == "plan"), None)
    return {
        "id": sub["id"],
        "customer_id": sub["customer_id"],
        "status": sub["status"],
        "plan": plan["item_price_id"] if plan else "",
        "seats": plan["quantity"] if plan else 0,
        "term_end": _when(sub.get("current_term_end") or sub.get("trial_end")),
        "cancelled_at": _when(sub.get("cancelled_at")),
        "live": sub["status"] != "cancelled",
    }


def _luhn_ok(number: str) -> bool:
    digits = [int(d) for d in reversed(number)]
    total = sum(digits[0::2]) + sum(sum(divmod(2 * d, 10)) for d in digits[1::2])
    return 12 <= len(number) <= 19 and total % 10 == 0


@require_http_methods(["GET", "POST"])
def checkout(request: HttpRequest, page_id: str) -> HttpResponse:
    """The hosted checkout: 4111 1111 1111 1111 pays, 4000 0000 0000 0002 is declined."""
    fake = runtime.chargebee()
    page, order = fake.store.get("hosted_page", page_id), fake.store.get("checkout", page_id)
    if page is None or order is None:
        return _error(request, "This checkout link is not valid.", 404)
    if page["state"] != "created":
        return _error(request, "This checkout has already been completed or cancelled.", 410)
    if page["expires_at"] < time.time():
        return _error(request, "This checkout link has expired. Please start again from the application.", 410)
    lines = [{**item, "unit": _money(item["unit_price"]), "total": _money(item["amount"])} for item in order["items"]]
    context = {"page": page, "lines": lines, "total": _money(sum(item["amount"] for item in order["items"]))}
    if request.method == "POST":
        number = "".join(ch for ch in request.POST.get("card_number", "") if ch.isdigit())
        if not _luhn_ok(number):
            context["error"] = "Your card number is incorrect."
            return render(request, "sandbox/checkout.html", context, status=400)
        try:
            fake.complete_hosted_page(page_id, card_number=number)
        except ChargebeeApiError as exc:
            context["error"] = exc.message
            return render(request, "sandbox/checkout.html", context, status=400)
        if not order.get("redirect_url"):
            return _error(request, "Payment successful. You can close this page.", 200)
        return HttpResponseRedirect(outbound.with_query(order["redirect_url"], id=page_id, state="succeeded"))
    return render(request, "sandbox/checkout.html", context)


def _portal_session(token: str) -> dict[str, Any] | None:
    fake = runtime.chargebee()
    found = fake.store.find("portal_session", [("token", "is", token)])
    session = found[0] if found else None
    if session is None or session["status"] == "logged_out" or session["expires_at"] < time.time():
        return None
    return session


@require_http_methods(["GET", "POST"])
def portal(request: HttpRequest, token: str) -> HttpResponse:
    """The self-serve portal: change seats, cancel now or at the end of the term, go back to the app."""
    fake = runtime.chargebee()
    session = _portal_session(token)
    if session is None:
        return _error(request, "This portal link has expired or was signed out. Open it again from the app.", 410)
    if session["status"] == "created":
        session = fake.store.put("portal_session", dict(session, status="logged_in", login_at=int(time.time())))
    subscriptions = fake.store.find("subscription", [("customer_id", "is", session["customer_id"])])
    if request.method == "GET":
        context = {"session": session, "subscriptions": [describe(sub) for sub in subscriptions], "token": token}
        return render(request, "sandbox/portal.html", context)
    action = request.POST.get("action")
    if action == "return":
        fake.store.put("portal_session", dict(session, status="logged_out", logout_at=int(time.time())))
        if not session.get("redirect_url"):
            return _error(request, "You are signed out of the portal.", 200)
        return HttpResponseRedirect(session["redirect_url"])
    sub_id = request.POST.get("subscription_id", "")
    if action not in PORTAL_ACTIONS or sub_id not in {sub["id"] for sub in subscriptions}:
        return _error(request, "Unknown action or subscription.")
    try:
        if action == "seats":
            fake.change_seats(sub_id, int(request.POST.get("quantity", "0") or 0), source="portal")
            messages.success(request, "Your subscription was updated.")
        else:
            fake.cancel_subscription(sub_id, end_of_term=action == "cancel_end", source="portal")
            when = "at the end of the current term" if action == "cancel_end" else "now"
            messages.success(request, f"Your subscription will be cancelled {when}.")
    except ValueError:
        messages.error(request, "Seats must be a whole number.")
    except ChargebeeApiError as exc:
        messages.error(request, exc.message)
    return redirect("sandbox:chargebee-portal", token=token)
