"""Admin for support staff: invoices (read-only, linked to Chargebee), and dues, card and billing details on
the organization page, with a filter for organizations past due or in grace. Registered by ``admin.py``."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.utils.html import format_html

from . import conf
from .models import BillingProfile, Invoice, Subscription, grace_cutoff


def chargebee_link(kind: str, object_id: str) -> str:
    """A link to the object in Chargebee's dashboard, or its id when no site is configured."""
    site = conf.get("CHARGEBEE_SITE")
    if not site or not object_id:
        return object_id or "-"
    url = f"https://{site}.chargebee.com/d/{kind}/{object_id}"
    return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, object_id)


class ReadOnly:
    """Mirrors change only through Chargebee: nothing is added, changed or deleted here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("invoice_link", "organization", "status", "date", "total", "amount_due", "currency", "deleted_at")
    list_filter = ("status", "dunning_status", ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("id", "organization__id", "organization__display_name", "chargebee_subscription_id")
    list_select_related = ("organization",)

    @admin.display(description="Invoice", ordering="id")
    def invoice_link(self, obj: Invoice) -> str:
        return chargebee_link("invoices", obj.id)


class BillingProfileInline(ReadOnly, admin.StackedInline):
    model = BillingProfile
    can_delete = False
    fields = (
        ("payment_type", "card_brand", "card_last4", "card_expiry_month", "card_expiry_year", "payment_status"),
        ("company", "vat_number", "billing_email"),
        "billing_address",
    )


class DuesInline(ReadOnly, admin.TabularInline):
    """The organization's subscriptions that owe money."""

    model = Subscription
    verbose_name_plural = "dues"
    fields = ("status", "due_invoices_count", "total_dues", "currency", "due_since", "grace_period_ended_at")
    readonly_fields = fields

    def get_queryset(self, request) -> QuerySet:
        return super().get_queryset(request).filter(due_invoices_count__gt=0)


class PastDueFilter(admin.SimpleListFilter):
    title = "payment health"
    parameter_name = "past_due"

    def lookups(self, request, model_admin):
        return (("grace", "Past due, in grace"), ("ended", "Past due, grace ended"), ("any", "Past due"))

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        if self.value() is None:
            return queryset
        due = queryset.filter(subscriptions__due_invoices_count__gt=0)
        if self.value() == "grace":
            due = due.filter(subscriptions__due_since__gt=grace_cutoff())
        elif self.value() == "ended":
            due = due.filter(subscriptions__due_since__lte=grace_cutoff())
        return due.distinct()
