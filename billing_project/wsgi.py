"""WSGI entry point (gunicorn billing_project.wsgi): refuses to start while orgbilling reports an error."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_project.settings")
application = get_wsgi_application()

from orgbilling.checks import refuse_to_serve_misconfigured  # noqa: E402  (needs the settings loaded above)

refuse_to_serve_misconfigured()
