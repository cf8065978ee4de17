"""Sandbox routes, mounted at /sandbox/ by billing_project/urls.py when SANDBOX_ENABLED."""

from django.urls import path, re_path

from sandbox import (
    billing_console_views,
    change_console_views,
    chargebee_invoice_views,
    chargebee_views,
    console_views,
    price_console_views,
    renewal_console_views,
    scalekit_api,
    scalekit_views,
)

app_name = "sandbox"

urlpatterns = [
    path("", console_views.index, name="index"),
    path("knobs", console_views.knobs, name="knobs"),
    path("faults", console_views.faults, name="faults"),
    path("renewal", billing_console_views.renewal, name="renewal"),
    path("next-charges", renewal_console_views.next_charges, name="next-charges"),
    path("changes", change_console_views.change_knobs, name="change-knobs"),
    path("item-price", price_console_views.item_price, name="item-price"),
    # Fake Scalekit: SCALEKIT_ENV_URL is /sandbox/scalekit.
    path("scalekit/organizations", console_views.organization_list, name="organizations"),
    path("scalekit/oauth/authorize", scalekit_views.authorize, name="scalekit-authorize"),
    path("scalekit/oauth/token", scalekit_views.token, name="scalekit-token"),
    path("scalekit/keys", scalekit_views.keys, name="scalekit-keys"),
    path("scalekit/oidc/logout", scalekit_views.logout, name="scalekit-logout"),
    path("scalekit/api/v1/organizations", scalekit_api.organization_list, name="scalekit-api-organizations"),
    path(
        "scalekit/api/v1/organizations/<str:organization_id>",
        scalekit_api.organization_detail,
        name="scalekit-api-organization",
    ),
    path(
        "scalekit/api/v1/organizations/<str:organization_id>/users",
        scalekit_api.organization_users,
        name="scalekit-api-organization-users",
    ),
    path(
        "scalekit/api/v1/organizations/<str:organization_id>/settings/usermanagement",
        scalekit_api.user_management_settings,
        name="scalekit-api-usermanagement",
    ),
    path(
        "scalekit/api/v1/organizations/<str:organization_id>/directories",
        scalekit_api.directories,
        name="scalekit-api-directories",
    ),
    path(
        "scalekit/api/v1/organizations/<str:organization_id>/directories/<str:directory_id>/users",
        scalekit_api.directory_users,
        name="scalekit-api-directory-users",
    ),
    # Fake Chargebee: CHARGEBEE_API_BASE_URL is /sandbox/chargebee/api/v2; the site's pages beside it.
    re_path(r"^chargebee/api/v2(?:/.*)?$", chargebee_views.api, name="chargebee-api"),
    path("chargebee/pages/v3/<str:page_id>/", chargebee_views.checkout, name="chargebee-checkout"),
    path("chargebee/portal/v2/access/<str:token>", chargebee_views.portal, name="chargebee-portal"),
    path("chargebee/invoices/<str:token>.pdf", chargebee_invoice_views.invoice_pdf, name="chargebee-invoice-pdf"),
    path("chargebee/collect_now/<str:page_id>/", chargebee_invoice_views.collect_now, name="chargebee-collect-now"),
    path(
        "chargebee/manage_payment_sources/<str:page_id>/",
        chargebee_invoice_views.manage_payment_sources,
        name="chargebee-manage-payment-sources",
    ),
]
