"""The project's settings (production mode, from the environment) plus the bench app and its probe.

Plain HTTP on loopback, so no SSL redirect; everything else is as deployed.
"""

from billing_project.settings import *  # noqa: F403
from billing_project.settings import INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
MIDDLEWARE = ["bench.probe.ProbeMiddleware", *MIDDLEWARE]
ROOT_URLCONF = "bench.urls"
SECURE_SSL_REDIRECT = False
