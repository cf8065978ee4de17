"""URLs of the reference project: the admin plus everything orgbilling serves."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("orgbilling.urls")),
]
