"""Django admin for support staff: read-only views of billing, and permissioned, confirmed actions.

Organizations and subscriptions mirror Chargebee, and deliveries are the
deduplication record of every vendor event, so none of them is added, edited
or deleted here (deliveries leave only through ``orgbilling_prune_deliveries``).
Support acts through actions instead, each behind its own permission and a
confirmation page: resync from Chargebee, replay deliveries, open the customer
or subscription in Chargebee's dashboard. Resyncs and replays are written to
the audit trail with the staff member who ran them.

The classes work on any ``AdminSite`` a project registers them on: pages are
rendered with that site's context and links reversed in its namespace.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from urllib.parse import quote, urlencode

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from . import audit, conf
from .admin_billing_health import BillingProfileInline, DuesInline, PastDueFilter
from .audit import AuditEvent
from .chargebee_gateway import ChargebeeError
from .models import DirectoryUser, Organization, Subscription, WebhookDelivery
from .reconcile import sync_subscriptions
from .replay import replay
from .seat_admin import AtSeatLimit, SeatLimitState, recount_and_send, seats_column

RESYNC_PERMISSION = "orgbilling.resync_organization"
REPLAY_PERMISSION = "orgbilling.replay_webhookdelivery"
OPEN_PERMISSION = "orgbilling.open_in_chargebee"
INLINE_AUDIT_EVENTS = 50  # newest shown on the organization's page; the rest are in the audit list

Outcome = AuditEvent.Outcome


def dashboard_url(kind: str, vendor_id: str) -> str | None:
    """The page of a Chargebee customer or subscription in the site's dashboard; None without CHARGEBEE_SITE."""
    site = conf.get("CHARGEBEE_SITE")
    if not site or not vendor_id:
        return None
    return f"https://{quote(site, safe='')}.chargebee.com/d/{kind}/{quote(vendor_id, safe='')}"


def delivery_organization(delivery: WebhookDelivery) -> str:
    """The organization a delivery concerns as far as local tables tell ("" if unknown): its audit row's owner."""
    try:
        payload = delivery.payload
    except ValueError:
        return ""
    if not isinstance(payload, dict):
        return ""
    if delivery.vendor == WebhookDelivery.Vendor.SCALEKIT:
        data = payload.get("data")
        organization_event = str(payload.get("type")).startswith("organization.") and isinstance(data, dict)
        return str(data.get("id") or "") if organization_event else ""
    content = payload.get("content") if isinstance(payload.get("content"), dict) else {}
    customer, subscription = content.get("customer"), content.get("subscription")
    customer_id = (customer.get("id") if isinstance(customer, dict) else None) or (
        subscription.get("customer_id") if isinstance(subscription, dict) else None
    )
    if not isinstance(customer_id, str):
        return ""
    return Organization.objects.filter(chargebee_customer_id=customer_id).values_list("id", flat=True).first() or ""


class ReadOnly:
    """Viewed in the admin, written only by orgbilling's own code."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class SupportAdmin(ReadOnly, admin.ModelAdmin):
    """A read-only model admin whose actions ask for confirmation on the site they are served from."""

    def has_resync_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RESYNC_PERMISSION)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REPLAY_PERMISSION)

    def has_open_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(OPEN_PERMISSION)

    def action_page(self, request: HttpRequest, queryset: QuerySet, template: str, **context) -> TemplateResponse:
        return TemplateResponse(
            request,
            f"admin/orgbilling/{template}",
            {
                **self.admin_site.each_context(request),  # this site's header, title and links
                "objects": queryset,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
                **context,
            },
        )

    def confirm_then(
        self, request: HttpRequest, queryset: QuerySet, *, title: str, action: str, warning: str, run: Callable
    ) -> TemplateResponse | None:
        """Show a confirmation page first; run ``run(queryset)`` once the user confirms it."""
        if request.POST.get("confirmed") == "yes":
            run(queryset)
            return None
        return self.action_page(request, queryset, "confirm_action.html", title=title, action=action, warning=warning)

    def dashboard_links(
        self, request: HttpRequest, queryset: QuerySet, *, title: str, links: Iterable[tuple[Model, str | None]]
    ) -> TemplateResponse:
        """A page of dashboard links: opening one is the confirmation (changes made there bypass this site)."""
        return self.action_page(
            request,
            queryset,
            "chargebee_links.html",
            title=title,
            links=list(links),
            site_configured=bool(conf.get("CHARGEBEE_SITE")),
        )


class ReadOnlyInline(ReadOnly, admin.TabularInline):
    extra = 0
    show_change_link = True


class SubscriptionInline(ReadOnlyInline):
    model = Subscription
    fields = (
        "id",
        "state",
        "plan_id",
        "seats",
        "current_period_end",
        "cancel_at_period_end",
        "chargebee_subscription_id",
    )
    readonly_fields = fields


class NewestFirst(BaseInlineFormSet):
    """Only the newest events: an organization's whole trail can be long."""

    def get_queryset(self) -> QuerySet:
        return super().get_queryset()[:INLINE_AUDIT_EVENTS]


class AuditEventInline(ReadOnlyInline):
    model = AuditEvent
    formset = NewestFirst
    show_change_link = False
    fields = ("at", "action", "outcome", "user_id", "email", "staff_user", "asked", "answer")
    readonly_fields = fields
    verbose_name_plural = f"audit trail (newest {INLINE_AUDIT_EVENTS}; all of it under Audit events)"


@admin.register(Organization)
class OrganizationAdmin(SupportAdmin):
    list_display = (
        "id",
        "display_name",
        "chargebee_customer_id",
        "seats",
        "seat_limit_status",
        "seat_limit_confirmed_at",
        "deleted_at",
        "created_at",
    )
    search_fields = ("id", "display_name", "chargebee_customer_id", "external_id")
    list_filter = (("deleted_at", admin.EmptyFieldListFilter), AtSeatLimit, SeatLimitState, PastDueFilter)
    readonly_fields = ("scalekit_update_time", "created_at", "updated_at", "audit_trail")
    inlines = [SubscriptionInline, DuesInline, BillingProfileInline, AuditEventInline]
    actions = ["resync_from_chargebee", "recount_seats", "open_in_chargebee"]

    @admin.display(description="seats used / limit")
    def seats(self, obj: Organization) -> str:
        return seats_column(obj)

    @admin.display(description="Audit trail")
    def audit_trail(self, obj: Organization) -> str:
        if not self.admin_site.is_registered(AuditEvent):
            return "-"
        url = reverse("admin:orgbilling_auditevent_changelist", current_app=self.admin_site.name)
        return format_html('<a href="{}?{}">All audit events</a>', url, urlencode({"organization__exact": obj.pk}))

    @admin.action(description="Resync from Chargebee", permissions=["resync"])
    def resync_from_chargebee(self, request: HttpRequest, queryset: QuerySet[Organization]):
        def run(selected: QuerySet[Organization]) -> None:
            for organization in selected:
                try:
                    summary = sync_subscriptions(organization=organization)
                except ChargebeeError as exc:
                    outcome, answer = Outcome.FAILED, {"error": str(exc)}
                    self.message_user(request, f"{organization}: {exc}", messages.ERROR)
                else:
                    outcome = Outcome.DONE
                    answer = {"summary": str(summary), "orphaned_locally": ", ".join(summary.orphaned_locally)}
                    self.message_user(request, f"{organization}: {summary}", messages.SUCCESS)
                audit.record_staff(
                    request.user, "resync", outcome=outcome, organization_id=organization.pk, answer=answer
                )

        return self.confirm_then(
            request,
            queryset,
            title="Resync from Chargebee?",
            action="resync_from_chargebee",
            warning="This reads each organization's subscriptions from Chargebee and overwrites the local copies.",
            run=run,
        )

    @admin.action(description="Recount seats and send the limit to Scalekit again", permissions=["resync"])
    def recount_seats(self, request: HttpRequest, queryset: QuerySet[Organization]):
        def run(selected: QuerySet[Organization]) -> None:
            for organization in selected:
                ok, answer = recount_and_send(organization)
                self.message_user(request, f"{organization}: {answer}", messages.SUCCESS if ok else messages.ERROR)
                outcome = Outcome.DONE if ok else Outcome.FAILED
                audit.record_staff(
                    request.user, "recount_seats", outcome=outcome, organization_id=organization.pk, answer=answer
                )

        return self.confirm_then(
            request,
            queryset,
            title="Recount seats and send the limit again?",
            action="recount_seats",
            warning="This lists each organization's members in Scalekit and sets its seat cap there again "
            "(a rejected limit is tried again).",
            run=run,
        )

    @admin.action(description="Open in Chargebee's dashboard", permissions=["open"])
    def open_in_chargebee(self, request: HttpRequest, queryset: QuerySet[Organization]):
        links = ((org, dashboard_url("customers", org.chargebee_customer_id or "")) for org in queryset)
        return self.dashboard_links(request, queryset, title="Open customers in Chargebee?", links=links)


@admin.register(Subscription)
class SubscriptionAdmin(SupportAdmin):
    list_display = ("id", "organization", "state", "plan_id", "seats", "current_period_end", "cancel_at_period_end")
    list_filter = ("status", "plan_id")
    search_fields = (
        "id",
        "organization__id",
        "organization__display_name",
        "chargebee_customer_id",
        "chargebee_subscription_id",
    )
    list_select_related = ("organization",)
    readonly_fields = ("id", "created_at", "updated_at")  # not editable, so only shown when named
    actions = ["open_in_chargebee"]

    @admin.action(description="Open in Chargebee's dashboard", permissions=["open"])
    def open_in_chargebee(self, request: HttpRequest, queryset: QuerySet[Subscription]):
        links = ((sub, dashboard_url("subscriptions", sub.chargebee_subscription_id or "")) for sub in queryset)
        return self.dashboard_links(request, queryset, title="Open subscriptions in Chargebee?", links=links)


@admin.register(DirectoryUser)
class DirectoryUserAdmin(SupportAdmin):
    """Directory (SCIM) seats: who is blocked over the limit, in the order they would be released."""

    list_display = ("email", "id", "organization", "active", "blocked", "arrived_at", "deleted_at", "seen_at")
    list_filter = ("blocked", "active", ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("id", "email", "organization__id", "organization__display_name")
    list_select_related = ("organization",)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(SupportAdmin):
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
    fields = (*list_display, "last_error", "pretty_body")
    readonly_fields = ("pretty_body",)
    actions = ["replay_deliveries"]

    @admin.display(description="body")
    def pretty_body(self, obj: WebhookDelivery) -> str:
        try:
            text = json.dumps(json.loads(obj.body), indent=2, sort_keys=True)
        except ValueError:
            text = obj.body
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", text)

    @admin.action(description="Replay selected deliveries", permissions=["replay"])
    def replay_deliveries(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]):
        def run(selected: QuerySet[WebhookDelivery]) -> None:
            results = replay(selected)
            for delivery, outcome in results:
                audit.record_staff(
                    request.user,
                    "replay",
                    outcome=Outcome.FAILED if outcome.failed else Outcome.DONE,
                    organization_id=delivery_organization(delivery),
                    asked={"vendor": delivery.vendor, "event_id": delivery.event_id, "event_type": delivery.event_type},
                    answer={"status": outcome.status, "error": outcome.error},
                )
            failed = [d.event_id for d, outcome in results if outcome.failed]
            self.message_user(request, f"Replayed {len(results)} deliveries.", messages.SUCCESS)
            if failed:
                self.message_user(request, f"Still failing: {', '.join(failed)}", messages.ERROR)

        return self.confirm_then(
            request,
            queryset,
            title="Replay deliveries?",
            action="replay_deliveries",
            warning="This can change billing in Chargebee (a replayed deletion cancels subscriptions).",
            run=run,
        )


class StaffOrMember(admin.SimpleListFilter):
    title = "by"
    parameter_name = "by"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("staff", "Support staff"), ("member", "Organization members")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        if self.value() == "staff":
            return queryset.exclude(staff_user="")
        if self.value() == "member":
            return queryset.filter(staff_user="")
        return queryset


@admin.register(AuditEvent)
class AuditEventAdmin(SupportAdmin):
    list_display = ("at", "action", "outcome", "organization_id", "user_id", "email", "staff_user")
    list_filter = ("action", "outcome", StaffOrMember)
    date_hierarchy = "at"
    search_fields = ("=organization__id", "user_id", "email", "staff_user")
    fields = ("at", "action", "outcome", "organization_id", "user_id", "email", "staff_user", "asked", "answer")
    readonly_fields = ("organization_id",)  # the id, not the row: it may have been deleted
