"""Django admin for support staff: organizations, subscriptions and the delivery log."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.html import format_html

from . import conf
from .chargebee_gateway import ChargebeeError
from .models import Organization, Subscription, WebhookDelivery
from .reconcile import sync_subscriptions
from .replay import replay

REPLAY_PERMISSION = "orgbilling.replay_webhookdelivery"


def confirm_then(request, queryset, *, title: str, action: str, run) -> TemplateResponse | None:
    """Show a confirmation page first; run ``run(queryset)`` once the user confirms it."""
    if request.POST.get("confirmed") == "yes":
        run(queryset)
        return None
    return TemplateResponse(
        request,
        "admin/orgbilling/confirm_action.html",
        {
            **admin.site.each_context(request),
            "title": title,
            "objects": queryset,
            "action": action,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "opts": queryset.model._meta,
        },
    )


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    extra = 0
    can_delete = False
    show_change_link = True
    fields = (
        "id",
        "status",
        "plan_id",
        "seats",
        "current_period_end",
        "cancel_at_period_end",
        "chargebee_subscription_id",
    )
    readonly_fields = fields


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("id", "display_name", "customer_link", "deleted_at", "created_at")
    search_fields = ("id", "display_name", "chargebee_customer_id", "external_id")
    list_filter = (("deleted_at", admin.EmptyFieldListFilter),)
    readonly_fields = ("customer_link", "scalekit_update_time", "created_at", "updated_at")
    inlines = [SubscriptionInline]
    actions = ["resync_from_chargebee"]

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm(REPLAY_PERMISSION)

    @admin.action(description="Resync from Chargebee", permissions=["replay"])
    def resync_from_chargebee(self, request, queryset):
        def run(selected):
            for organization in selected:
                try:
                    summary = sync_subscriptions(organization=organization)
                except ChargebeeError as exc:
                    self.message_user(request, f"{organization}: {exc}", messages.ERROR)
                else:
                    self.message_user(request, f"{organization}: {summary}", messages.SUCCESS)

        return confirm_then(request, queryset, title="Resync from Chargebee?", action="resync_from_chargebee", run=run)

    @admin.display(description="Chargebee customer", ordering="chargebee_customer_id")
    def customer_link(self, obj: Organization) -> str:
        if not obj.chargebee_customer_id:
            return "-"
        site = conf.get("CHARGEBEE_SITE")
        if not site:
            return obj.chargebee_customer_id
        return format_html(
            '<a href="https://{}.chargebee.com/d/customers/{}" target="_blank" rel="noopener">{}</a>',
            site,
            obj.chargebee_customer_id,
            obj.chargebee_customer_id,
        )


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("id", "organization", "status", "plan_id", "seats", "current_period_end", "cancel_at_period_end")
    list_filter = ("status", "plan_id")
    search_fields = (
        "id",
        "organization__id",
        "organization__display_name",
        "chargebee_customer_id",
        "chargebee_subscription_id",
    )
    list_select_related = ("organization",)
    readonly_fields = ("created_at", "updated_at", "resource_version")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "event_id",
        "vendor",
        "event_type",
        "status",
        "attempts",
        "received_at",
        "processed_at",
        "next_attempt_at",
    )
    list_filter = ("status", "vendor", "event_type")
    # Counts beside each filter choice: how many deliveries are pending (received) or failed, at a glance.
    show_facets = admin.ShowFacets.ALWAYS
    search_fields = ("event_id",)
    readonly_fields = (*list_display, "last_error", "pretty_body")
    exclude = ("body",)
    actions = ["replay_deliveries"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm(REPLAY_PERMISSION)

    @admin.display(description="body")
    def pretty_body(self, obj: WebhookDelivery) -> str:
        try:
            text = json.dumps(json.loads(obj.body), indent=2, sort_keys=True)
        except ValueError:
            text = obj.body
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", text)

    @admin.action(description="Replay selected deliveries", permissions=["replay"])
    def replay_deliveries(self, request, queryset):
        def run(selected):
            results = replay(selected)
            failed = [d.event_id for d, outcome in results if outcome.failed]
            self.message_user(request, f"Replayed {len(results)} deliveries.", messages.SUCCESS)
            if failed:
                self.message_user(request, f"Still failing: {', '.join(failed)}", messages.ERROR)

        return confirm_then(request, queryset, title="Replay deliveries?", action="replay_deliveries", run=run)
