"""The project's URLs with the sandbox mounted, whatever SANDBOX_ENABLED was when the project's urls.py loaded."""

from django.urls import include, path

from billing_project.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    *(pattern for pattern in project_urlpatterns if str(pattern.pattern) != "sandbox/"),
    path("sandbox/", include("sandbox.urls")),
]
