"""Routes served by orgbilling; include them at the project root."""

from django.urls import path

from . import webhook_views

app_name = "orgbilling"

urlpatterns = [
    path("api/webhooks/scalekit", webhook_views.scalekit_webhook, name="scalekit-webhook"),
    path("api/webhooks/chargebee", webhook_views.chargebee_webhook, name="chargebee-webhook"),
]
