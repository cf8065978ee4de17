"""The whole product in a real browser, against the demo exactly as README command one starts it.

``bin/demo`` runs as a subprocess on a free port with its own SQLite file and
sandbox folder (not pytest-django's live_server, whose in-memory database is
shared across threads), and headless Chromium (Debian's package) goes through
sign-in, checkout, seats, invoices and a failed renewal paid from its banner,
the portal and the Django admin. On failure each open page
leaves a screenshot and its HTML under test-artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.accessibility import assert_accessible, violations
from tests.processes import free_port

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.real_time]  # waits on the bin/demo server process

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
DOCS = ROOT / "docs"  # the README's screenshots, taken by the journey at the root
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT = 180  # seconds: bin/demo may install requirements first
TIMEOUT_MS = 15_000


@dataclass(frozen=True)
class Demo:
    url: str
    billing: str  # where orgbilling's pages are: "" at the root, "/billing-app" when mounted there
    admin_password: str
    log: Path


@pytest.fixture(scope="module", params=["", "billing-app/"], ids=["root", "mounted"])
def demo(request, tmp_path_factory) -> Iterator[Demo]:
    """Run bin/demo (orgbilling at the root, or under /billing-app/); yield its URL, admin password and output."""
    if not os.path.exists(CHROMIUM):
        missing = f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does)"
        if os.environ.get("CI"):  # CI installs it (.ci/run): missing there is a failure, not a skip
            pytest.fail(missing)
        pytest.skip(missing)
    work = tmp_path_factory.mktemp("demo")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    vendor_variables = ("SCALEKIT_", "CHARGEBEE_", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    env = {name: value for name, value in os.environ.items() if not name.startswith(vendor_variables)}
    env.update(
        PORT=str(port),
        APP_URL=url,
        DEBUG="true",
        SANDBOX="true",
        SANDBOX_DIR=str(work / "sandbox"),
        SANDBOX_WEBHOOK_DELAY="0.5",
        DATABASE_URL=f"sqlite:///{work / 'db.sqlite3'}",
        BILLING_URL_PREFIX=request.param,
    )
    log = work / "demo.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            ["bin/demo", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        billing = "/" + request.param.rstrip("/") if request.param else ""
        yield Demo(url, billing, _wait_until_serving(url, log, server), log)
    finally:
        with suppress(ProcessLookupError):  # gone already when bin/demo failed to start
            os.killpg(server.pid, signal.SIGTERM)  # the whole group: bin/demo and the server it started
        server.wait(timeout=30)


def _wait_until_serving(url: str, log: Path, server: subprocess.Popen) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"bin/demo exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        printed = re.search(r"user admin\s+password (\S+)", log.read_text())
        try:
            if printed and httpx.get(f"{url}/sandbox/", timeout=2).status_code == 200:
                return printed[1]
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"bin/demo did not serve {url} in {STARTUP_TIMEOUT}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def browser() -> Iterator:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextmanager
def evidence(name: str, demo: Demo, *pages) -> Iterator[None]:
    """Keep a screenshot and the HTML of each page, and the server's output, if the block fails."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(demo.log, ARTIFACTS / "demo.log")
        for number, page in enumerate(pages):
            stem = ARTIFACTS / f"{name}-{number}"
            try:
                page.screenshot(path=f"{stem}.png", full_page=True)
                Path(f"{stem}.html").write_text(page.content())
            except playwright_api.Error:
                pass  # a crashed page has nothing to show; the original failure matters
        raise


def new_page(browser, base_url: str):
    page = browser.new_context(base_url=base_url).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


def sign_in(page, demo: Demo, who: str) -> None:
    """Open billing signed out, and pick the demo identity on the fake Scalekit's sign-in page."""
    page.goto(f"{demo.billing}/billing")
    page.get_by_role("button", name=re.compile(f"Sign in as {who}")).click()
    page.wait_for_url(f"{demo.url}{demo.billing}/billing")


def tab_to(page, target, limit: int = 60) -> None:
    """Move the focus to ``target`` with the Tab key alone, as someone without a mouse does."""
    for _ in range(limit):
        if target.evaluate("element => element === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {target}")


def member_action(page, button: str, email: str) -> None:
    """Add or invite someone on the fake Scalekit's organizations console (Acme's form)."""
    page.goto("/sandbox/scalekit/organizations")
    page.get_by_label("Email to add to or invite into Acme Corp").fill(email)
    page.get_by_role("button", name=button).click()


def billing_shows(page, demo: Demo, text: str) -> None:
    """Reload /billing until it shows ``text``: membership webhooks and the recount arrive a moment later."""
    for _ in range(40):
        page.goto(f"{demo.billing}/billing")
        if page.get_by_text(text).count():
            return
        time.sleep(0.25)
    playwright_api.expect(page.get_by_text(text)).to_be_visible(timeout=0)


def test_subscribe_pay_cancel_read_only_member_and_admin(demo, browser):
    expect = playwright_api.expect
    admin = new_page(browser, demo.url)
    with evidence("1-subscribe", demo, admin):
        sign_in(admin, demo, "Ada Admin")
        expect(admin.get_by_role("heading", name="Billing for Acme Corp")).to_be_visible()
        assert_accessible(admin, "the billing page before subscribing")
        # The keyboard alone: Tab to the seats, type, Tab to Subscribe, Enter.
        tab_to(admin, admin.get_by_label("Seats"))
        admin.keyboard.press("ControlOrMeta+A")
        admin.keyboard.type("3")
        tab_to(admin, admin.get_by_role("button", name="Subscribe"))
        admin.keyboard.press("Enter")

        admin.wait_for_url(re.compile(r"/sandbox/chargebee/pages/v3/"))
        admin.get_by_label("Card number").fill("4000 0000 0000 0002")
        admin.get_by_role("button", name=re.compile("^Pay")).click()
        expect(admin.get_by_role("alert")).to_contain_text("Your card was declined")
        admin.get_by_label("Card number").fill("4111 1111 1111 1111")
        admin.get_by_role("button", name=re.compile("^Pay")).click()

        # The success route applies the paid checkout itself: the first render already shows it.
        admin.wait_for_url(f"{demo.url}{demo.billing}/billing?success=1")
        facts = admin.locator("dl").first
        expect(facts).to_contain_text("Active", timeout=0)
        expect(facts).to_contain_text("3", timeout=0)
        expect(admin.locator("#ob-seat-price")).to_have_text("3 × $15.00 per month", timeout=0)
        expect(admin.locator("#ob-next-charge")).to_contain_text("$45.00 on", timeout=0)
        assert_accessible(admin, "the billing page of a subscriber")

    console = new_page(browser, demo.url)
    with evidence("1b-seats", demo, admin, console):
        # Acme has Ada and Max; the third of its 3 seats goes to Zoe, and Scalekit refuses a fourth person.
        member_action(console, "Add member to Acme Corp", "zoe@acme.test")
        expect(console.locator(".messages")).to_contain_text("Added zoe@acme.test")
        member_action(console, "Invite to Acme Corp", "ivy@acme.test")
        expect(console.locator(".messages")).to_contain_text("Acme Corp has reached its limit of 3 users")
        billing_shows(admin, demo, "3 of 3 seats used")
        expect(admin.get_by_text("New members cannot join Acme Corp until you add seats.")).to_be_visible()
        admin.locator("#ob-change-seats").fill("4")
        admin.get_by_role("button", name="Preview the change").click()
        expect(admin.get_by_text("Charged now", exact=True)).to_be_visible()
        assert_accessible(admin, "the preview of a seat change")
        if not demo.billing:
            admin.screenshot(path=DOCS / "change-preview.png", full_page=True)
        admin.get_by_role("button", name="Confirm").click()  # the card on file pays the prorated seat
        admin.wait_for_url(f"{demo.url}{demo.billing}/billing")
        expect(admin.get_by_text(re.compile(r"^Done: .* with 4 seats"))).to_be_visible()
        # The new amount at once: 4 seats at the Team price, and the next charge Chargebee estimated for them.
        expect(admin.locator("#ob-seat-price")).to_have_text("4 × $15.00 per month", timeout=0)
        expect(admin.locator("#ob-next-charge")).to_contain_text("$60.00 on", timeout=0)
        if not demo.billing:
            admin.screenshot(path=DOCS / "billing-page.png", full_page=True)  # the README's picture
        billing_shows(admin, demo, "3 of 4 seats used")
        member_action(console, "Invite to Acme Corp", "ivy@acme.test")
        expect(console.locator(".messages")).to_contain_text("Invited ivy@acme.test")

    with evidence("1c-invoices-and-past-due", demo, admin, console):
        # The paid checkout's invoice is mirrored from its webhook; its PDF is a fresh Chargebee link at click time.
        billing_shows(admin, demo, "Download PDF")
        with admin.expect_download() as downloaded:
            admin.locator("#invoices").get_by_role("button", name=re.compile("Download PDF")).first.click()
        assert Path(downloaded.value.path()).read_bytes().startswith(b"%PDF")
        # Chargebee's scheduler renews the subscription and the card is declined: the banner says so.
        subscription_id = admin.locator("input[name=subscription]").first.input_value()
        console.goto("/sandbox/")
        console.get_by_role("button", name="Fail the next charge").click()
        console.get_by_label("Subscription id").fill(subscription_id)
        console.get_by_role("button", name="Renew now").click()
        expect(console.locator(".messages")).to_contain_text(f"Renewed {subscription_id}")
        billing_shows(admin, demo, "Payment failed")
        expect(admin.locator("#past-due")).to_contain_text("failed on")
        assert_accessible(admin, "the billing page with a failed payment")
        # Pay now: Chargebee's collect_now page, then back to /billing, which shows the result at once.
        admin.locator("#past-due").get_by_role("button", name="Pay now").click()
        admin.wait_for_url(re.compile(r"/collect_now/"))
        admin.get_by_label("Card number").fill("4111 1111 1111 1111")
        admin.get_by_role("button", name=re.compile("^Pay")).click()
        admin.wait_for_url(f"{demo.url}{demo.billing}/billing")
        expect(admin.get_by_text("Thank you: your payment is recorded.")).to_be_visible(timeout=0)
        expect(admin.locator("#past-due")).to_have_count(0, timeout=0)

    with evidence("2-portal", demo, admin):
        admin.get_by_role("button", name="Manage billing").click()
        admin.wait_for_url(re.compile(r"/sandbox/chargebee/portal/"))
        admin.get_by_role("button", name="Cancel at end of term").click()
        expect(admin.get_by_role("status")).to_contain_text("cancelled at the end of the current term")
        admin.get_by_role("button", name="Back to the application").click()
        admin.wait_for_url(f"{demo.url}{demo.billing}/billing")
        expect(admin.get_by_text(re.compile(r"cancels on \w+"))).to_be_visible(timeout=0)

    with evidence("2b-keep-and-cancel-in-the-app", demo, admin):
        # Keep it from the billing page, then cancel it again here, after the page naming the date: keyboard only.
        tab_to(admin, admin.get_by_role("button", name="Keep my subscription"))
        admin.keyboard.press("Enter")
        admin.wait_for_url(re.compile(r"/billing#ob-current$"))
        expect(admin.get_by_text("Your subscription continues: it renews as before.")).to_be_visible(timeout=0)
        expect(admin.locator("#ob-next-charge")).to_contain_text(re.compile(r"\$\d+\.\d\d on \w+"), timeout=0)
        tab_to(admin, admin.get_by_role("link", name="Cancel at the end of the term"))
        admin.keyboard.press("Enter")
        admin.wait_for_url(re.compile(r"/billing/cancel\?subscription="))
        expect(admin.locator("#ob-cancel-date")).to_contain_text("keeps its")
        assert_accessible(admin, "the confirmation of a cancellation at the end of the term")
        tab_to(admin, admin.get_by_role("button", name="Cancel at the end of the term"))
        admin.keyboard.press("Enter")
        admin.wait_for_url(re.compile(r"/billing#ob-current$"))
        expect(admin.get_by_text(re.compile(r"it ends on \w+"))).to_be_visible(timeout=0)
        assert_accessible(admin, "the billing page of a subscription that cancels at the end of its term")

    member = new_page(browser, demo.url)
    with evidence("3-member", demo, member):
        sign_in(member, demo, "Max Member")
        expect(member.locator("dl").first).to_contain_text("Non Renewing")
        expect(member.get_by_text("Only billing managers of Acme Corp can change its billing.")).to_be_visible()
        assert member.locator("form[action*='/billing/']").count() == 0
        assert member.get_by_role("button", name=re.compile("Subscribe|Manage billing|Change")).count() == 0
        assert_accessible(member, "the billing page of a member")
        member.goto(f"{demo.billing}/api/subscription/success?id=hp_nobody_opened")
        expect(member.get_by_role("heading")).to_have_count(1)
        assert_accessible(member, "a problem page")

    staff = new_page(browser, demo.url)
    with evidence("4-admin", demo, staff):
        staff.goto("/admin/")
        staff.get_by_label("Username").fill("admin")
        staff.get_by_label("Password").fill(demo.admin_password)
        staff.get_by_role("button", name="Log in").click()
        staff.goto("/admin/orgbilling/organization/")
        acme = staff.locator("#result_list tr", has_text="Acme Corp")
        expect(acme.locator("td.field-chargebee_customer_id")).to_have_text("org_70000000000000001")
        staff.goto("/admin/orgbilling/auditevent/?action=subscribe&outcome=done")
        expect(staff.locator("#result_list tbody tr").first).to_contain_text("org_70000000000000001")
        staff.goto("/admin/orgbilling/subscription/")
        subscription = staff.locator("#result_list tbody tr", has_text="Acme Corp")
        expect(subscription).to_contain_text("Non Renewing")
        expect(subscription.locator("td.field-seats")).to_have_text("4")
        staff.goto("/admin/orgbilling/webhookdelivery/")
        deliveries = staff.locator("#result_list")
        for event_type in ("organization.created", "subscription_created", "subscription_cancellation_scheduled"):
            expect(deliveries).to_contain_text(event_type)


def test_the_accessibility_check_fails_a_page_with_a_serious_violation(browser):
    page = browser.new_page()
    page.set_content('<!doctype html><html lang="en"><title>t</title><main><input type="text"></main></html>')
    assert any(line.startswith("label (critical)") for line in violations(page))
    with pytest.raises(AssertionError, match="label"):
        assert_accessible(page, "an unlabelled input")
