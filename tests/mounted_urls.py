"""A project that serves orgbilling under /billing-app/ (tests/test_mounted.py)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("billing-app/", include("orgbilling.urls")),
]
