"""Routes served by orgbilling; include them at the project root."""

from django.urls import path

from . import api_views, auth_views, views, webhook_views

app_name = "orgbilling"

urlpatterns = [
    path("auth/login", auth_views.login_view, name="login"),
    path("auth/callback", auth_views.callback_view, name="callback"),
    path("auth/logout", auth_views.logout_view, name="logout"),
    path("billing", views.billing, name="billing"),
    path("billing/subscribe", views.subscribe, name="subscribe"),
    path("billing/change", views.change, name="change"),
    path("billing/portal", views.portal, name="portal"),
    path("billing/portal/return", views.portal_return, name="portal-return"),
    path("api/session", api_views.session, name="session"),
    path("api/subscription", api_views.subscriptions, name="subscriptions"),
    path("api/subscription/create", api_views.create_subscription, name="subscription-create"),
    path("api/subscription/success", views.subscription_success, name="subscription-success"),
    path("api/webhooks/scalekit", webhook_views.scalekit_webhook, name="scalekit-webhook"),
    path("api/webhooks/chargebee", webhook_views.chargebee_webhook, name="chargebee-webhook"),
]
