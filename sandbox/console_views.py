"""The sandbox's own pages: the index (knobs, faults, logs) and the fake Scalekit's organizations.

These stand in for the vendors' dashboards. Every form posts back and
redirects (post/redirect/get), with the outcome as a Django message.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sandbox import organizations, runtime, scim
from sandbox.chargebee_views import describe
from sandbox.scalekit_directory import DirectoryError

DIRECTORY_ACTIONS = ("directory_add", "directory_deactivate", "directory_activate", "directory_remove")
MEMBER_ACTIONS = ("add_member", "invite", "remove_member", "expire_invite")
FAULT_STATUSES = {"503": 503, "500": 500, "429": 429}
RECENT = 25


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    fake = runtime.chargebee()
    context = {
        "billing_url": settings.SANDBOX_BILLING_URL,
        "scalekit_env_url": settings.SCALEKIT_ENV_URL,
        "chargebee_api_url": settings.CHARGEBEE_API_BASE_URL,
        "knobs": runtime.sender().knobs,
        "dropped": len(runtime.sender().dropped()),
        "attempts": runtime.sender().attempts()[:RECENT],
        "calls": list(reversed(fake.calls()))[:RECENT],
        "subscriptions": [describe(sub) for sub in fake.store.find("subscription", [])[:RECENT]],
        "item_prices": fake.store.find("item_price", [("deleted", "is", False)])[:RECENT],
        "fault_kinds": [*FAULT_STATUSES, "timeout"],
    }
    return render(request, "sandbox/index.html", context)


@require_POST
def knobs(request: HttpRequest) -> HttpResponse:
    """Webhook delivery knobs for this process (defaults: SANDBOX_WEBHOOK_* settings)."""
    sender = runtime.sender()
    knobs = sender.knobs
    if "release_dropped" in request.POST:
        messages.success(request, f"Sending {sender.release_dropped()} dropped Scalekit webhook(s) late.")
        return redirect("sandbox:index")
    try:
        delay = float(request.POST.get("delay", knobs.delay))
    except ValueError:
        delay = -1
    if not 0 <= delay <= 300:
        messages.error(request, "The delay is a number of seconds between 0 and 300.")
        return redirect("sandbox:index")
    knobs.delay = delay
    knobs.duplicate = "duplicate" in request.POST
    knobs.out_of_order = "out_of_order" in request.POST
    knobs.drop_scalekit = "drop_scalekit" in request.POST
    messages.success(request, "Webhook delivery settings saved.")
    return redirect("sandbox:index")


@require_POST
def faults(request: HttpRequest) -> HttpResponse:
    """Make the fake Chargebee's next API calls fail (``fail_next``), or clear the faults."""
    fake = runtime.chargebee()
    if "clear" in request.POST:
        fake.clear_faults()
        messages.success(request, "Chargebee faults cleared.")
        return redirect("sandbox:index")
    kind, path = request.POST.get("kind", ""), request.POST.get("path", "").strip() or None
    try:
        count = int(request.POST.get("count", "1"))
        seconds = float(request.POST.get("seconds", "25"))
    except ValueError:
        count = 0
    if count < 1 or kind not in [*FAULT_STATUSES, "timeout"]:
        messages.error(request, "Choose how many calls (at least 1) and how they fail.")
        return redirect("sandbox:index")
    if kind == "timeout":
        fake.fail_next(count, path=path, timeout_seconds=seconds)
    else:
        fake.fail_next(count, FAULT_STATUSES[kind], path=path)
    messages.success(request, f"The next {count} Chargebee call(s){f' to {path}' if path else ''} will fail: {kind}.")
    return redirect("sandbox:index")


@require_http_methods(["GET", "POST"])
def organization_list(request: HttpRequest) -> HttpResponse:
    """Create, rename and delete organizations; each change sends its ``organization.*`` webhook."""
    if request.method == "GET":
        directory = runtime.directory()
        context = {
            "organizations": directory.organizations(),
            "memberships": directory.memberships(),
            "directory_users": [user for org in directory.organizations() for user in scim.users(org["id"])],
        }
        return render(request, "sandbox/organizations.html", context)
    action, name = request.POST.get("action"), request.POST.get("display_name", "").strip()
    org_id = request.POST.get("organization_id", "")
    try:
        if action in MEMBER_ACTIONS:
            _member_action(request, action, org_id)
        elif action in DIRECTORY_ACTIONS:
            _directory_action(request, action, org_id)
        elif action in ("create", "rename") and not name:
            messages.error(request, "An organization needs a name.")
        elif action == "create":
            organization = organizations.create(name, request.POST.get("external_id", "").strip())
            messages.success(request, f"Created {organization['display_name']} ({organization['id']}).")
        elif action == "rename":
            organizations.rename(org_id, name)
            messages.success(request, f"Renamed {org_id} to {name}.")
        elif action == "delete":
            organizations.delete(org_id)
            messages.success(request, f"Deleted {org_id}.")
        else:
            messages.error(request, "Unknown action.")
    except DirectoryError as exc:
        messages.error(request, str(exc))
    return redirect("sandbox:organizations")


def _member_action(request: HttpRequest, action: str, org_id: str) -> None:
    """Add, invite, remove or expire a member; beyond the cap Scalekit's refusal is shown (``DirectoryError``)."""
    email, user_id = request.POST.get("email", "").strip(), request.POST.get("user_id", "")
    if action in ("add_member", "invite"):
        if "@" not in email:
            messages.error(request, "An email address is needed.")
        elif action == "add_member":
            organizations.add_member(org_id, email)
            messages.success(request, f"Added {email}.")
        else:
            organizations.invite(org_id, email)
            messages.success(request, f"Invited {email}.")
    elif action == "remove_member":
        user = organizations.remove_member(org_id, user_id)
        messages.success(request, f"Removed {user['email']}.")
    else:
        user = organizations.expire_invite(org_id, user_id)
        messages.success(request, f"The invite of {user['email']} expired (Scalekit sends no webhook for this).")


def _directory_action(request: HttpRequest, action: str, org_id: str) -> None:
    """Directory sync (SCIM): add, deactivate, reactivate or remove a directory user; each sends its webhook."""
    user_id, email = request.POST.get("user_id", ""), request.POST.get("email", "").strip()
    if action == "directory_add":
        if "@" not in email:
            messages.error(request, "An email address is needed.")
            return
        user = scim.add(org_id, email)
    elif action == "directory_remove":
        user = scim.remove(user_id)
    else:
        user = scim.set_active(user_id, action == "directory_activate")
    messages.success(request, f"Directory user {user['email']}: {action.removeprefix('directory_')} sent.")
