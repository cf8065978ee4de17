"""The ways a billing request can be refused, each with the HTTP status it is answered with.

Services raise these with a message fit to show the user; the page and JSON
views translate them in one place (``orgbilling.decorators``), so a service
never builds a response and a view never decides a status.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _


class BillingProblem(Exception):
    """A refusal with a user-facing ``message``, an HTTP ``status`` and extra response ``headers``."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.headers = headers or {}


class NotSignedIn(BillingProblem):
    """No valid Scalekit token: APIs answer 401, pages redirect to sign-in."""

    status = 401


class BillingDenied(BillingProblem, PermissionDenied):
    """Signed in, but not allowed to do this to this organization (403).

    Also a ``PermissionDenied``, so code outside orgbilling's views that lets
    it escape still gets Django's 403 rather than a 500.
    """

    status = 403


class NotFound(BillingProblem):
    """The referenced object is not the organization's (404: its existence is not revealed)."""

    status = 404


class Throttled(BillingProblem):
    """The organization used up its Chargebee call budget for now (429 with Retry-After)."""

    status = 429

    def __init__(self, retry_after: int):
        super().__init__(
            _("Too many billing requests for this organization; try again in %(seconds)s seconds.")
            % {"seconds": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


class SignInUnavailable(BillingProblem):
    """Scalekit cannot be reached to check who is signing in (503 with Retry-After; never a sign-in redirect)."""

    status = 503

    def __init__(self, retry_after: float):
        seconds = max(1, round(retry_after))
        message = "Sign-in is temporarily unavailable. Try again shortly."
        super().__init__(message, headers={"Retry-After": str(seconds)})
