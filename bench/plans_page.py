"""The bare billing page bench/plans_bench.py compares ``GET /billing`` with: a view and a URLconf of its own.

``GET /bench/billing`` reads the rows ``/billing`` shows with plain queries (the organization the
middleware loads, its newest live subscription, the offered item prices in one query, a page of
invoices) and renders a compact template with the same values: the plan name, seats x unit price,
the next charge and its date, one card per offered price with its formatted price, the invoices.
Money goes through ``orgbilling.money.format_money``, as on the page. No authorization, notices,
forms or billing details: what is left is the least a page showing those values costs.

Used as ``settings.ROOT_URLCONF = "bench.plans_page"``, so it runs in the same process behind the
same middleware as orgbilling's view. Not imported by ``bench.settings`` (this module needs no
``bench`` app; ``bench.views`` does).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import include, path
from django.views.decorators.http import require_GET

from orgbilling.models import Invoice, ItemPrice, Subscription
from orgbilling.money import format_money

LIVE = ("active", "in_trial", "non_renewing", "paused", "future")

TEMPLATE = engines["django"].from_string(
    """<!doctype html><title>Billing · {{ organization }}</title>
<h1>Billing for {{ organization }}</h1>
{% if subscription %}<section><h2>Current subscription</h2>
<p>{{ plan_name }}: {{ subscription.seats }} seats × {{ unit_price }} per {{ period }}</p>
<p>Next charge: {{ next_amount }} on {{ subscription.next_billing_at|date:"DATE_FORMAT" }}</p></section>{% endif %}
<section><h2 id="ob-plans">Plans</h2><ul>{% for card in cards %}
<li><h3>{{ card.name }}</h3><p><strong>{{ card.amount }}</strong> per seat per {{ card.period }}</p></li>{% endfor %}
</ul></section>
<section><h2>Invoices</h2><table>{% for invoice in invoices %}
<tr><td>{{ invoice.date|date:"DATE_FORMAT" }}</td><td>{{ invoice.id }}</td><td>{{ invoice.total_text }}</td>
<td>{{ invoice.get_status_display }}</td></tr>{% endfor %}</table></section>
"""
)


def _plan_item(subscription: Subscription) -> dict:
    return next((item for item in subscription.items or [] if item.get("item_type") == "plan"), {})


@require_GET
def bare_billing(request: HttpRequest) -> HttpResponse:
    organization = request.billing.organization
    subscription = (
        Subscription.objects.filter(organization_id=organization.pk, status__in=LIVE).order_by("-created_at").first()
    )
    offered = [entry["id"] for entry in settings.ORGBILLING_PLANS or []]
    wanted = [*offered, subscription.plan_id] if subscription else offered
    prices = ItemPrice.objects.in_bulk(wanted)
    period = "year" if request.GET.get("period") == "year" else "month"  # the page's switch, monthly by default
    cards = [
        {
            "name": prices[price_id].external_name,
            "amount": format_money(prices[price_id].price or 0, prices[price_id].currency),
            "period": prices[price_id].period_unit,
        }
        for price_id in offered
        if price_id in prices and prices[price_id].period_unit == period
    ]
    context = {"organization": organization, "subscription": subscription, "cards": cards}
    if subscription is not None:
        price = prices.get(subscription.plan_id)
        currency = subscription.currency or (price.currency if price else "USD")
        unit = _plan_item(subscription).get("unit_price", price.price if price else 0)
        context.update(
            plan_name=price.external_name if price else subscription.plan_id,
            unit_price=format_money(unit, currency),
            period=price.period_unit if price else "",
            next_amount=format_money(subscription.renewal_amount or 0, currency),
        )
    invoices = list(
        Invoice.objects.filter(organization_id=organization.pk, deleted_at__isnull=True).order_by("-date", "-pk")[:10]
    )
    for invoice in invoices:
        invoice.total_text = format_money(invoice.total, invoice.currency)
    context["invoices"] = invoices
    return HttpResponse(TEMPLATE.render(context, request))


urlpatterns = [
    path("bench/billing", bare_billing),
    path("", include("billing_project.urls")),
]
