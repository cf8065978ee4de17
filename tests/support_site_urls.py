"""A project's own AdminSite with orgbilling's admin classes registered on it, and no default admin at all."""

from django.contrib.admin import AdminSite
from django.urls import path

from orgbilling import admin as orgbilling_admin
from orgbilling.models import AuditEvent, Organization, Subscription, WebhookDelivery


class SupportSite(AdminSite):
    site_header = "Acme support desk"
    site_title = "Acme support"


support_site = SupportSite(name="support")
support_site.register(Organization, orgbilling_admin.OrganizationAdmin)
support_site.register(Subscription, orgbilling_admin.SubscriptionAdmin)
support_site.register(WebhookDelivery, orgbilling_admin.WebhookDeliveryAdmin)
support_site.register(AuditEvent, orgbilling_admin.AuditEventAdmin)

urlpatterns = [path("support/", support_site.urls)]
