"""The project's URLs plus the two baseline views."""

from django.urls import include, path

from . import views

urlpatterns = [
    path("bench/rows/<str:key>", views.read_row),
    path("bench/rows", views.insert_row),
    path("", include("billing_project.urls")),
]
