"""The bare billing page bench/plans_bench.py compares ``GET /billing`` with: a view and a URLconf of its own.

``GET /bench/billing`` shows what ``/billing`` shows a billing manager of a subscribed organization, every
section of it, from plain queries and one plain template (Django's engine, no orgbilling service, template
tag or form class): the header with the sign-out form and the messages, the past-due alert, the current
subscription's facts (plan, status, seats x unit price per period, the seats used against the limit, trial
end, period end, the next charge and its date, a scheduled cancellation with its keep form, or the cancel
link), the change form (a scheduled change with its undo form, the plan options with their one-line
summaries, the seats field with its limits), the portal button, the payment method with its expiry warning
and update form, the billing details form with the current values, one page of invoices with a CSRF-protected
download button each and the pager, and the plan cards of the chosen period with their formatted prices,
yearly savings, seat ranges and the month/year switch. Money goes through ``orgbilling.money.format_money``,
as on the page; the texts are English literals (the page translates them), and there is no authorization.

Queries: the organization and session the middleware loads, the subscription, the offered item prices in one
query, the billing profile, one page of invoices (and their count only when the page is full).

Used as ``settings.ROOT_URLCONF = "bench.plans_page"``, so it runs in the same process behind the same
middleware as orgbilling's view. Not imported by ``bench.settings`` (this module needs no ``bench`` app;
``bench.views`` does).
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import include, path
from django.utils import timezone
from django.views.decorators.http import require_GET

from orgbilling.models import BillingProfile, Invoice, ItemPrice, Subscription
from orgbilling.money import format_money

LIVE = ("active", "in_trial", "non_renewing", "paused", "future")
RENEWING = ("future", "in_trial", "active")
PAGE_SIZE = 10
UNITS = {"day": "days", "week": "weeks", "month": "months", "year": "years"}
DETAILS = (  # name, label, autocomplete, required, max length: the billing details form's fields
    ("company", "Company name", "organization", True, 250),
    ("line1", "Address", "address-line1", True, 150),
    ("line2", "Address line 2", "address-line2", False, 150),
    ("city", "City", "address-level2", True, 50),
    ("state", "State or region", "address-level1", False, 50),
    ("zip", "Postal code", "postal-code", False, 20),
    ("country", "Country (two letters, e.g. DE)", "country", True, None),
    ("vat_number", "VAT or tax id", "off", False, 20),
    ("billing_email", "Billing email", "email", False, 70),
)

TEMPLATE = engines["django"].from_string(
    """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Billing · {{ organization }}</title></head>
<body><header><p>{{ organization }}</p><form method="post" action="/auth/logout">{% csrf_token %}
<span>{{ request.billing.email|default:request.billing.user_id }}</span><button type="submit">Sign out</button></form>
</header><main>{% if messages %}<div role="status"><ul>{% for message in messages %}
<li class="{{ message.tags }}">{{ message }}</li>{% endfor %}</ul></div>{% endif %}
<h1>Billing for {{ organization }}</h1>
{% if past_due %}<section role="alert"><h2>Payment failed</h2><p>A payment of {{ past_due }} failed on
{{ subscription.due_since|date:"j F" }}; pay now to keep {{ organization }}'s subscription.</p>
<form method="post" action="/billing/pay">{% csrf_token %}<button type="submit">Pay now</button></form></section>
{% endif %}
<section><h2>Current subscription</h2>{% if subscription %}
<dl><dt>Plan</dt><dd>{{ plan_name }}</dd><dt>Status</dt><dd>{{ subscription.get_status_display }}</dd>
<dt>Seats</dt><dd>{{ subscription.seats }} × {{ unit_price }} per {{ period }}</dd></dl>
{% if organization.seats_used is not None %}<p>{{ seats_taken }}{% if organization.seat_limit is not None %} of
{{ organization.seat_limit }}{% endif %} seats used{% if organization.seats_pending %} (pending invites included:
{{ organization.seats_pending }}){% endif %}</p>{% if at_limit %}<p role="status">New members cannot join
{{ organization }} until you add seats.</p>{% endif %}{% endif %}
<dl>{% if subscription.status == "in_trial" and subscription.trial_end %}<dt>Trial ends</dt>
<dd>{{ subscription.trial_end|date:"DATE_FORMAT" }}</dd>{% endif %}{% if subscription.current_period_end %}
<dt>Current period ends</dt><dd>{{ subscription.current_period_end|date:"DATE_FORMAT" }}</dd>{% endif %}
{% if renews and subscription.next_billing_at %}<dt>Next charge</dt><dd>{% if next_amount %}{{ next_amount }} on
{{ subscription.next_billing_at|date:"DATE_FORMAT" }}{% if stale %} (being updated after the latest change){% endif %}
{% else %}On {{ subscription.next_billing_at|date:"DATE_FORMAT" }}; the amount is being worked out.{% endif %}</dd>
{% endif %}</dl>
{% if cancels_on %}<p>This subscription cancels on {{ cancels_on|date:"DATE_FORMAT" }}.</p>
<form method="post" action="/billing/keep">{% csrf_token %}<input type="hidden" name="subscription"
value="{{ subscription.id }}"><button type="submit">Keep my subscription</button></form>
{% elif cancellable %}<p><a href="/billing/cancel?subscription={{ subscription.id|urlencode }}">Cancel at the end of
the term</a></p>{% endif %}</section>
<section><h2>Change plan or seats</h2>{% if subscription.has_scheduled_changes %}<p>A change to
{{ subscription.scheduled_change.seats }} seats is scheduled for
{{ subscription.current_period_end|date:"DATE_FORMAT" }}.</p>
<form method="post" action="/billing/change/undo">{% csrf_token %}<button type="submit">Undo scheduled change</button>
</form>{% endif %}<form method="post" action="/billing/change/preview">{% csrf_token %}
<input type="hidden" name="subscription" value="{{ subscription.id }}">
<label for="plan">Plan</label><select id="plan" name="plan">{% for choice in choices %}
<option value="{{ choice.id }}"{% if choice.id == subscription.plan_id %} selected{% endif %}>
{{ choice.label }}</option>
{% endfor %}</select><label for="seats">Seats</label><input id="seats" name="seats" type="number" required
min="{{ low }}" max="{{ high }}" value="{{ subscription.seats }}" aria-describedby="seats-help">
<p id="seats-help">Between {{ low }} and {{ high }} (limits depend on the plan).</p>
<button type="submit">Preview the change</button></form></section>{% endif %}
<section><h2>Payment methods and invoices</h2><form method="post" action="/billing/portal">{% csrf_token %}
<button type="submit">Manage billing</button></form></section>
<section><h2>Payment method</h2>{% if profile.card_last4 %}<p>{{ profile.card_brand|default:"Card" }} ending in
{{ profile.card_last4 }}{% if profile.card_expiry_month %}, expires
{{ profile.card_expiry_month|stringformat:"02d" }}/{{ profile.card_expiry_year }}{% endif %}.</p>
{% elif profile.payment_type %}<p>{{ profile.payment_type }}.</p>{% else %}<p>No payment method on file.</p>{% endif %}
{% if card_expired %}<p role="alert">This card expired; update the payment method so the next payment does not fail.</p>
{% elif card_expires %}<p>This card expires on {{ card_expires|date:"DATE_FORMAT" }}; update the payment method before
then.</p>{% endif %}<form method="post" action="/billing/payment-method">{% csrf_token %}
<button type="submit">Update payment method</button></form></section>
<section><h2>Billing details</h2><p>Shown on your invoices.</p><form method="post" action="/billing/details" novalidate>
{% csrf_token %}{% for field in details %}<label for="id_{{ field.name }}">{{ field.label }}</label>
<input type="{% if field.name == "billing_email" %}email{% else %}text{% endif %}" name="{{ field.name }}"
id="id_{{ field.name }}" value="{{ field.value }}" autocomplete="{{ field.autocomplete }}"{% if field.max %}
maxlength="{{ field.max }}"{% endif %}{% if field.required %} required{% endif %}>{% endfor %}
<button type="submit">Save billing details</button></form></section>
<section><h2>Invoices</h2>{% if invoices %}<table><thead><tr><th>Date</th><th>Invoice</th><th>Total</th><th>Status</th>
<th>Download</th></tr></thead><tbody>{% for invoice in invoices %}<tr><td>{{ invoice.date|date:"DATE_FORMAT" }}</td>
<td>{{ invoice.id }}</td><td>{{ invoice.total_text }}{% if invoice.due_text %} ({{ invoice.due_text }} due){% endif %}
</td><td>{% if invoice.is_void %}Void{% else %}{{ invoice.get_status_display }}{% endif %}</td><td><form method="post"
action="/billing/invoices/{{ invoice.id|urlencode }}/pdf">{% csrf_token %}<button type="submit"
aria-label="Download PDF of invoice {{ invoice.id }}">Download PDF</button></form></td></tr>{% endfor %}</tbody>
</table>{% if pages > 1 %}<nav><a href="?invoices=2#invoices">Older</a> Page 1 of {{ pages }}</nav>{% endif %}
{% else %}<p>No invoices yet.</p>{% endif %}</section>
<section><h2 id="ob-plans">Plans</h2>{% if switch %}<nav><ul>
<li><a href="?period=month#ob-plans"{% if period == "month" %}
aria-current="true"{% endif %}>Monthly</a></li><li><a href="?period=year#ob-plans"{% if period == "year" %}
aria-current="true"{% endif %}>Yearly</a></li></ul></nav>{% endif %}
<p>Your subscription is billed in {{ currency }}: plans in {{ currency }} are shown.</p>
<ul>{% for card in cards %}<li><h3>{{ card.name }}</h3>{% if card.current %}
<p>Your current plan</p>{% endif %}{% if card.tiers %}<table>{% for tier in card.tiers %}<tr><th>{{ tier.0 }}</th>
<td>{{ tier.1 }}</td></tr>{% endfor %}</table>{% else %}<p><strong>{{ card.amount }}</strong> per seat
{{ card.period }}</p>{% endif %}{% if card.saving %}<p>Save {{ card.percent }}% ({{ card.saving }} a year) against
monthly billing.</p>{% endif %}{% if card.description %}<p>{{ card.description }}</p>{% endif %}
<p>{{ card.low }} to {{ card.high }} seats.</p></li>{% endfor %}</ul></section></main></body></html>
"""
)


def _period(price: ItemPrice) -> str:
    count = price.period or 1
    return f"per {price.period_unit}" if count == 1 else f"every {count} {UNITS.get(price.period_unit, '')}"


def _tiers(price: ItemPrice, currency: str) -> list[tuple[str, str]]:
    if price.pricing_model not in ("tiered", "volume", "stairstep"):
        return []
    return [
        (f"{tier['starting_unit']} to {tier.get('ending_unit') or 'more'}", format_money(tier["price"], currency))
        for tier in price.tiers
    ]


@require_GET
def bare_billing(request: HttpRequest) -> HttpResponse:
    organization = request.billing.organization
    subscription = (
        Subscription.objects.filter(organization_id=organization.pk, status__in=LIVE).order_by("-created_at").first()
    )
    entries = {entry["id"]: entry for entry in settings.ORGBILLING_PLANS or []}
    prices = ItemPrice.objects.in_bulk([*entries, subscription.plan_id] if subscription else list(entries))
    price = prices.get(subscription.plan_id) if subscription else None
    currency = ((subscription.currency if subscription else "") or (price.currency if price else "") or "USD").upper()
    offered = [
        prices[price_id]
        for price_id in entries
        if price_id in prices and prices[price_id].is_available and prices[price_id].currency == currency
    ]
    monthly = {p.item_id: p for p in offered if p.period_unit == "month" and p.period == 1}
    yearly = {p.item_id for p in offered if p.period_unit == "year" and p.period == 1}
    switch = bool(monthly.keys() & yearly)
    period = "year" if switch and request.GET.get("period") == "year" else "month"
    choices, cards = [], []
    for item in offered:
        entry = entries[item.id]
        amount = format_money(item.price or 0, currency)
        tiers = _tiers(item, currency)
        summary = f"{'from ' + min(tiers, key=lambda t: t[1])[1] if tiers else amount} per seat {_period(item)}"
        choices.append({"id": item.id, "label": f"{entry.get('name') or item.external_name} · {summary}"})
        both = item.item_id in monthly and item.item_id in yearly and item.period == 1
        if both and item.period_unit != period:
            continue
        card = {
            "name": entry.get("name") or item.external_name,
            "amount": amount,
            "tiers": tiers,
            "period": _period(item),
            "current": subscription is not None and item.id == subscription.plan_id,
            "description": entry.get("description") or item.description,
            "low": entry.get("min_seats", 1),
            "high": entry.get("max_seats", 1000),
        }
        base = monthly.get(item.item_id)
        if item.period_unit == "year" and item.period == 1 and base and not tiers:
            twelve = (base.price or 0) * 12
            saving = twelve - (item.price or 0)
            if twelve > 0 and saving > 0:
                card.update(saving=format_money(saving, currency), percent=(saving * 200 + twelve) // (twelve * 2))
        cards.append(card)
    first = entries[offered[0].id] if offered else {}
    context = {
        "organization": organization,
        "subscription": subscription,
        "currency": currency,
        "choices": choices,
        "cards": cards,
        "switch": switch,
        "period": period,
        "low": first.get("min_seats", 1),
        "high": first.get("max_seats", 1000),
        "seats_taken": organization.seats_taken,
        "at_limit": organization.at_seat_limit,
    }
    if subscription is not None:
        plan_item = next((i for i in subscription.items or [] if i.get("item_type") == "plan"), {})
        unit = plan_item.get("unit_price", price.price if price else 0)
        renews = subscription.status in RENEWING and not subscription.cancel_at_period_end
        context.update(
            plan_name=entries.get(subscription.plan_id, {}).get("name") or (price.external_name if price else ""),
            unit_price=format_money(unit, currency),
            period=price.period_unit if price else "",
            next_amount=format_money(subscription.renewal_amount, currency)
            if subscription.renewal_amount is not None
            else "",
            renews=renews,
            stale=renews
            and subscription.renewal_amount is not None
            and subscription.renewal_estimate_version != subscription.resource_version,
            cancels_on=(subscription.cancelled_at or subscription.current_period_end)
            if subscription.cancel_at_period_end
            else None,
            cancellable=subscription.status in ("active", "in_trial")
            and not subscription.cancel_at_period_end
            and bool(subscription.chargebee_subscription_id),
            past_due=format_money(subscription.total_dues, currency) if subscription.due_invoices_count else "",
        )
    profile = BillingProfile.objects.filter(organization_id=organization.pk).first()
    context["profile"] = profile
    if profile is not None and profile.card_expiry_year and profile.card_expiry_month:
        year, month = profile.card_expiry_year, profile.card_expiry_month
        last_day = date(year, month, calendar.monthrange(year, month)[1])
        today = timezone.localdate()
        context["card_expired"] = today > last_day or profile.payment_status == "expired"
        context["card_expires"] = last_day if today >= last_day - timedelta(days=30) else None
    values = {}
    if profile is not None:
        values = {**profile.billing_address, "company": profile.company, "billing_email": profile.billing_email}
        values["vat_number"] = profile.vat_number
    context["details"] = [
        {
            "name": name,
            "label": label,
            "autocomplete": auto,
            "required": required,
            "max": top,
            "value": values.get(name, ""),
        }
        for name, label, auto, required, top in DETAILS
    ]
    invoices = list(
        Invoice.objects.filter(organization_id=organization.pk, deleted_at__isnull=True).order_by("-date", "-pk")[
            :PAGE_SIZE
        ]
    )
    for invoice in invoices:
        invoice.total_text = format_money(invoice.total, invoice.currency)
        invoice.due_text = format_money(invoice.amount_due, invoice.currency) if invoice.amount_due else ""
    count = len(invoices)
    if count == PAGE_SIZE:
        count = Invoice.objects.filter(organization_id=organization.pk, deleted_at__isnull=True).count()
    context.update(invoices=invoices, pages=-(-count // PAGE_SIZE))
    return HttpResponse(TEMPLATE.render(context, request))


urlpatterns = [
    path("bench/billing", bare_billing),
    path("", include("billing_project.urls")),
]
