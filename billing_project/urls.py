"""URLs of the reference project: the admin, everything orgbilling serves (under BILLING_URL_PREFIX), the sandbox."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

handler500 = "orgbilling.request_log.server_error"  # the error page shows the request id

urlpatterns = [
    path("admin/", admin.site.urls),
    path(settings.BILLING_URL_PREFIX, include("orgbilling.urls")),
]

if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
