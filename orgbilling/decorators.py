"""View decorators: gating app views on a subscription, and turning billing refusals into responses.

Services raise ``BillingProblem`` subclasses; these decorators are the one
place that decides how each looks to a browser (a sign-in redirect, an error
page, a message on the billing page) or to an API client (JSON with a status).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import render
from django.urls import Resolver404, resolve, reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from .errors import BillingProblem, NotFound, NotSignedIn
from .scalekit_auth import sign_in_url

View = Callable[..., HttpResponse]
SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


def see_other(url: str) -> HttpResponse:
    """303: the browser follows with a GET (the answer to a form POST that leaves the site)."""
    response = HttpResponse(status=303)
    response["Location"] = url
    return response


def problem_page(request: HttpRequest, problem: BillingProblem) -> HttpResponse:
    """A refusal shown on its own page (no organization, not found, ...), or a sign-in redirect."""
    if isinstance(problem, NotSignedIn):
        return HttpResponseRedirect(sign_in_url(request))
    response = render(request, "orgbilling/problem.html", {"problem": problem}, status=problem.status)
    for name, value in problem.headers.items():
        response[name] = value
    return response


def answers_json(request: HttpRequest) -> bool:
    """Whether a refusal made outside a view is JSON: on orgbilling's API routes, or for clients not asking for HTML."""
    try:
        view = resolve(request.path_info, getattr(request, "urlconf", None)).func
    except Resolver404:
        view = None
    return getattr(view, "orgbilling_api", False) or "text/html" not in request.headers.get("Accept", "")


def refusal(request: HttpRequest, problem: BillingProblem) -> HttpResponse:
    """A refusal made before any view ran (middleware, sign-in views): JSON for APIs, else the problem page."""
    if answers_json(request):
        return JsonResponse({"error": problem.message}, status=problem.status, headers=problem.headers)
    return problem_page(request, problem)


def back_to_billing(view: View) -> View:
    """For the routes Chargebee sends browsers back to: any refusal becomes a message on /billing.

    Signed-out users are sent to sign in (and then back here); a subscription
    or page of another organization is a plain 404, with nothing revealed.
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except (NotSignedIn, NotFound) as problem:
            return problem_page(request, problem)
        except BillingProblem as problem:
            if getattr(request, "billing", None) is None or request.billing.organization is None:
                return problem_page(request, problem)
            messages.error(request, problem.message, fail_silently=True)
            return HttpResponseRedirect(reverse("orgbilling:billing"))

    return wrapped


def billing_api(view: View) -> View:
    """JSON views: refusals as ``{"error": message}``; CSRF checked unless the caller sent a Bearer token.

    Browsers never add an Authorization header by themselves, so a request
    authenticated by one cannot be forged by another site; a cookie session can.
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        context = getattr(request, "billing", None)
        if context is not None and not context.bearer and request.method not in SAFE_METHODS:
            refused = CsrfViewMiddleware(lambda _: HttpResponse()).process_view(request, None, (), {})
            if refused is not None:
                return JsonResponse({"error": _("CSRF check failed: send the X-CSRFToken header.")}, status=403)
        try:
            return view(request, *args, **kwargs)
        except BillingProblem as problem:
            return JsonResponse({"error": problem.message}, status=problem.status, headers=problem.headers)

    wrapped.orgbilling_api = True  # type: ignore[attr-defined]  (read by answers_json)
    return csrf_exempt(wrapped)


def subscription_required(
    view: View | None = None, *, plan_id: str | None = None, api: bool = False
) -> View | Callable[[View], View]:
    """Let a view run only for organizations with an active subscription (to ``plan_id``, if given).

    Pages send signed-out users to sign in and unsubscribed ones to /billing;
    with ``api=True`` the answers are JSON 401 and 402 (Payment Required).
    Use as ``@subscription_required`` or ``@subscription_required(api=True)``.
    """

    def decorate(inner: View) -> View:
        @wraps(inner)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            context = getattr(request, "billing", None)
            if context is None:
                if api:
                    return JsonResponse({"error": _("Sign in first.")}, status=401)
                return HttpResponseRedirect(sign_in_url(request))
            if context.organization is None or not context.organization.subscribed(plan_id):
                if api:
                    return JsonResponse({"error": _("An active subscription is required.")}, status=402)
                return HttpResponseRedirect(reverse("orgbilling:billing"))
            return inner(request, *args, **kwargs)

        wrapped.orgbilling_api = api  # type: ignore[attr-defined]  (read by answers_json)
        return wrapped

    return decorate(view) if view is not None else decorate
