"""The fake Chargebee, exercised through the real chargebee SDK over real HTTP.

The point of the fake is that code written against it also works against Chargebee, so every
test here goes through the SDK's own encoding and error mapping rather than poking the WSGI app.
"""

import json
import threading
import time

import chargebee
import chargebee.main
import httpx
import pytest
from chargebee import APIError, InvalidRequestError, OperationFailedError

from sandbox.fake_chargebee import CardDeclined, ChargebeeApiError, FakeChargebee, serve

PRICES = {
    "team-monthly": {"price": 1200},
    "team-trial": {"price": 1200, "trial_days": 14},
    "extra-storage": {"price": 500, "item_type": "addon"},
}


@pytest.fixture(autouse=True)
def vendor_settings():
    """Stands in for conftest's Django-settings fixture of the same name: the fake needs no Django."""


@pytest.fixture
def fake():
    return FakeChargebee(item_prices=PRICES)


@pytest.fixture
def server(fake):
    with serve(fake) as running:
        yield running


def sdk_client(server, monkeypatch, api_key="test_key"):
    # The SDK forces https and its own CA bundle while this *class* attribute is True.
    monkeypatch.setattr(chargebee.main.Chargebee, "verify_ca_certs", False)
    cb = chargebee.Chargebee(api_key=api_key, site="fake")
    cb.update_protocol("http")
    cb.env.api_endpoint = server.url
    return cb


@pytest.fixture
def cb(server, monkeypatch):
    return sdk_client(server, monkeypatch)


def open_checkout(cb, sub_id=None, customer_id="org_1", item_price_id="team-monthly", quantity=3, **extra):
    params = {
        "subscription_items": [{"item_price_id": item_price_id, "quantity": quantity}],
        "customer": {"id": customer_id},
        "redirect_url": "https://app.example/billing/done",
        "cancel_url": "https://app.example/billing",
        **extra,
    }
    if sub_id:
        params["subscription"] = {"id": sub_id, **params.get("subscription", {})}
    return cb.HostedPage.checkout_new_for_items(params).hosted_page


def test_customer_create_retrieve_update_keeps_meta_data_key_case(cb):
    meta = {"organizationId": "org_1", "plan": "team"}

    created = cb.Customer.create({"id": "org_1", "company": "Acme", "meta_data": json.dumps(meta)}).customer
    assert created.meta_data == meta
    assert cb.Customer.retrieve("org_1").customer.company == "Acme"

    updated = cb.Customer.update("org_1", {"email": "a@acme.test", "meta_data": json.dumps({"organizationId": "o2"})})
    assert updated.customer.meta_data == {"organizationId": "o2"}  # replaced whole, not merged
    assert updated.customer.email == "a@acme.test"
    assert updated.customer.resource_version > created.resource_version


def test_customer_id_is_generated_and_duplicates_refused(cb):
    generated = cb.Customer.create({"company": "Acme"}).customer.id
    assert generated

    with pytest.raises(InvalidRequestError) as error:
        cb.Customer.create({"id": generated})
    assert (error.value.http_status_code, error.value.api_error_code) == (400, "duplicate_entry")
    assert error.value.param == "id"


@pytest.mark.parametrize("meta_data", [{"organizationId": "org_1"}, json.dumps(["a", "b"])])
def test_meta_data_must_be_a_json_object(cb, meta_data):
    # A dict is sent by the SDK as its Python repr, which is not JSON.
    with pytest.raises(InvalidRequestError) as error:
        cb.Customer.create({"meta_data": meta_data})
    assert (error.value.api_error_code, error.value.param) == ("param_wrong_value", "meta_data")


def test_customer_list_and_delete(cb, fake):
    for n in range(3):
        cb.Customer.create({"id": f"c{n}"})
    fake.create_subscription("c1", "team-monthly", 2, id="sub_c1")

    listed = cb.Customer.list({"limit": 2})
    assert [entry.customer.id for entry in listed.list] == ["c2", "c1"]
    assert cb.Customer.list({"limit": 2, "offset": listed.next_offset}).list[0].customer.id == "c0"

    assert cb.Customer.delete("c1").customer.deleted is True
    for missing in (lambda: cb.Customer.retrieve("c1"), lambda: cb.Subscription.retrieve("sub_c1")):
        with pytest.raises(InvalidRequestError) as error:
            missing()
        assert error.value.http_status_code == 404
    deleted = cb.Event.list({"event_type": {"is": "customer_deleted"}}).list[0].event
    assert [sub["id"] for sub in deleted.content["subscriptions"]] == ["sub_c1"]


def test_checkout_complete_retrieve_acknowledge(cb, fake):
    page = open_checkout(cb, sub_id="sub_1", pass_thru_content="org_1")
    assert (page.type, page.state, page.embed) == ("checkout_new", "created", False)
    assert page.url.endswith(f"/pages/v3/{page.id}/")
    assert page.expires_at - page.created_at == 3 * 3600

    with pytest.raises(InvalidRequestError) as early:
        cb.HostedPage.acknowledge(page.id)
    assert early.value.api_error_code == "invalid_state_for_request"

    fake.complete_hosted_page(page.id)
    retrieved = cb.HostedPage.retrieve(page.id).hosted_page
    assert retrieved.state == "succeeded"
    assert retrieved.pass_thru_content == "org_1"
    subscription = retrieved.content["subscription"]
    assert (subscription["id"], subscription["customer_id"], subscription["status"]) == ("sub_1", "org_1", "active")
    assert subscription["subscription_items"][0] == {
        "item_price_id": "team-monthly",
        "item_type": "plan",
        "quantity": 3,
        "unit_price": 1200,
        "amount": 3600,
        "object": "subscription_item",
    }
    assert retrieved.content["customer"]["card_status"] == "valid"
    assert retrieved.content["invoice"]["amount_paid"] == 3600

    assert cb.HostedPage.acknowledge(page.id).hosted_page.state == "acknowledged"
    with pytest.raises(InvalidRequestError) as twice:
        cb.HostedPage.acknowledge(page.id)
    assert twice.value.api_error_code == "invalid_state_for_request"


def test_checkout_needs_an_item_price(cb):
    with pytest.raises(InvalidRequestError) as missing:
        cb.HostedPage.checkout_new_for_items({"customer": {"id": "org_1"}})
    assert (missing.value.api_error_code, missing.value.param) == (
        "param_required",
        "subscription_items[item_price_id][0]",
    )

    with pytest.raises(InvalidRequestError) as unknown:
        open_checkout(cb, item_price_id="no-such-price")
    assert (unknown.value.http_status_code, unknown.value.api_error_code) == (404, "resource_not_found")


def test_duplicate_subscription_id_is_refused_at_creation_and_at_completion(cb, fake):
    first, second = open_checkout(cb, sub_id="sub_1"), open_checkout(cb, sub_id="sub_1")
    fake.complete_hosted_page(first.id)

    with pytest.raises(ChargebeeApiError) as on_completion:
        fake.complete_hosted_page(second.id)
    assert on_completion.value.api_error_code == "duplicate_entry"
    assert cb.HostedPage.retrieve(second.id).hosted_page.state == "created"

    with pytest.raises(InvalidRequestError) as on_creation:
        open_checkout(cb, sub_id="sub_1")
    assert (on_creation.value.api_error_code, on_creation.value.param) == ("duplicate_entry", "subscription[id]")


def test_trial_checkout_and_trial_end(cb, fake):
    trial_end = int(time.time()) + 7 * 86400
    page = open_checkout(cb, sub_id="sub_t", subscription={"trial_end": trial_end})
    content = fake.complete_hosted_page(page.id)["content"]
    assert (content["subscription"]["status"], content["subscription"]["trial_end"]) == ("in_trial", trial_end)
    assert "invoice" not in content  # nothing is charged during a trial

    assert fake.end_trial("sub_t")["status"] == "active"
    types = [entry.event.event_type for entry in cb.Event.list({"limit": 10}).list]
    assert types == ["subscription_activated", "payment_source_added", "subscription_created", "customer_created"]


def test_item_price_trial_days_and_past_trial_end(cb, fake):
    page = open_checkout(cb, item_price_id="team-trial")
    assert fake.complete_hosted_page(page.id)["content"]["subscription"]["status"] == "in_trial"

    page = open_checkout(cb, customer_id="org_2", subscription={"trial_end": int(time.time()) - 60})
    assert fake.complete_hosted_page(page.id)["content"]["subscription"]["status"] == "active"


def test_declined_card_records_nothing(cb, fake):
    page = open_checkout(cb, sub_id="sub_1")
    with pytest.raises(CardDeclined):
        fake.complete_hosted_page(page.id, card_number="4000000000000002")

    assert cb.HostedPage.retrieve(page.id).hosted_page.state == "created"
    assert cb.Event.list().list == []
    with pytest.raises(InvalidRequestError):
        cb.Subscription.retrieve("sub_1")


def test_checkout_existing_changes_seats_and_plan(cb, fake):
    fake.create_subscription("org_1", "team-monthly", 3, id="sub_1")
    page = cb.HostedPage.checkout_existing_for_items(
        {"subscription": {"id": "sub_1"}, "subscription_items": [{"item_price_id": "team-monthly", "quantity": 5}]}
    ).hosted_page
    assert page.type == "checkout_existing"

    fake.complete_hosted_page(page.id)
    subscription = cb.Subscription.retrieve("sub_1").subscription
    assert [(i.item_price_id, i.quantity, i.amount) for i in subscription.subscription_items] == [
        ("team-monthly", 5, 6000)
    ]
    newest = [entry.event.event_type for entry in cb.Event.list({"limit": 4}).list]
    assert newest == ["payment_source_added", "payment_succeeded", "invoice_generated", "subscription_changed"]

    with pytest.raises(InvalidRequestError) as unknown:
        cb.HostedPage.checkout_existing_for_items({"subscription": {"id": "nope"}})
    assert (unknown.value.http_status_code, unknown.value.param) == (404, "subscription[id]")


def test_subscription_list_pages_and_filters(cb, fake):
    for n in range(250):
        fake.create_subscription("org_1", "team-monthly", 1, id=f"sub_{n:03d}")
    fake.create_subscription("org_2", "team-monthly", 1, id="other", status="cancelled")
    fake.reset_calls()

    seen, offset = [], None
    while True:
        params = {"limit": 100, "customer_id": {"is": "org_1"}, **({"offset": offset} if offset else {})}
        page = cb.Subscription.list(params)
        seen += [entry.subscription.id for entry in page.list]
        assert all(entry.customer.id == "org_1" for entry in page.list)
        offset = page.next_offset
        if not offset:
            break

    assert len(fake.calls("GET", "/subscriptions")) == 3
    assert seen == [f"sub_{n:03d}" for n in reversed(range(250))]  # most recent first
    cancelled = cb.Subscription.list({"status": {"is": "cancelled"}}).list
    assert [entry.subscription.id for entry in cancelled] == ["other"]
    assert len(cb.Subscription.list({"status": {"in": ["active", "in_trial"]}, "limit": 100}).list) == 100


@pytest.mark.parametrize("limit", [0, 101])
def test_list_limit_must_be_between_1_and_100(cb, limit):
    with pytest.raises(InvalidRequestError) as error:
        cb.Subscription.list({"limit": limit})
    assert (error.value.api_error_code, error.value.param) == ("param_wrong_value", "limit")


def test_cancel_for_items(cb, fake):
    fake.create_subscription("org_1", "team-monthly", 3, id="sub_1")
    fake.create_subscription("org_1", "team-monthly", 3, id="sub_2")

    scheduled = cb.Subscription.cancel_for_items("sub_1", {"end_of_term": True}).subscription
    assert scheduled.status == "non_renewing"
    assert scheduled.cancelled_at == scheduled.current_term_end
    assert scheduled.cancel_schedule_created_at

    cancelled = cb.Subscription.cancel_for_items("sub_2", {"end_of_term": False}).subscription
    assert cancelled.status == "cancelled"
    with pytest.raises(InvalidRequestError) as twice:
        cb.Subscription.cancel_for_items("sub_2", {"end_of_term": False})
    assert twice.value.api_error_code == "invalid_state_for_request"

    types = [entry.event.event_type for entry in cb.Event.list({"source": {"is": "api"}}).list]
    assert types == ["subscription_cancelled", "subscription_cancellation_scheduled"]


def test_cancel_now_with_a_full_refund_answers_a_credit_note_to_refund(cb, fake):
    fake.create_subscription("org_1", "team-monthly", 3, id="sub_1")
    fake.create_subscription("org_1", "team-monthly", 3, id="sub_2")
    refund = {"credit_option_for_current_term_charges": "full", "refundable_credits_handling": "schedule_refund"}
    result = cb.Subscription.cancel_for_items("sub_1", {"end_of_term": False, **refund})
    assert result.subscription.status == "cancelled"
    [note] = result.credit_notes
    assert (note.subscription_id, note.type, note.status, note.total) == ("sub_1", "refundable", "refund_due", 3600)
    for wrong in ({"credit_option_for_current_term_charges": "all"}, {"end_of_term": True, **refund}):
        with pytest.raises(InvalidRequestError) as refused:
            cb.Subscription.cancel_for_items("sub_2", wrong)
        assert refused.value.api_error_code == "param_wrong_value"
    assert fake.get_subscription("sub_2")["status"] == "active"


@pytest.mark.parametrize(
    "call",
    [
        lambda cb: cb.Subscription.retrieve("nope"),
        lambda cb: cb.Customer.retrieve("nope"),
        lambda cb: cb.HostedPage.retrieve("nope"),
        lambda cb: cb.Event.retrieve("ev_nope"),
        lambda cb: cb.Subscription.cancel_for_items("nope", {}),
    ],
)
def test_unknown_ids_are_404(cb, call):
    with pytest.raises(InvalidRequestError) as error:
        call(cb)
    assert (error.value.http_status_code, error.value.api_error_code) == (404, "resource_not_found")


def test_wrong_api_key_is_401(monkeypatch):
    with serve(FakeChargebee(api_key="right")) as server:
        with pytest.raises(APIError) as error:
            sdk_client(server, monkeypatch, api_key="wrong").Customer.list()
        assert (error.value.http_status_code, error.value.api_error_code) == (401, "api_authentication_failed")
        assert sdk_client(server, monkeypatch, api_key="right").Customer.list().list == []


@pytest.mark.parametrize(
    ("status", "api_error_code"),
    [(503, "internal_temporary_error"), (500, "internal_error"), (429, "api_request_limit_exceeded")],
)
def test_fail_next_answers_chargebee_errors(cb, fake, status, api_error_code):
    fake.fail_next(1, status=status, path="/customers/*", method="GET")
    with pytest.raises(OperationFailedError) as error:
        cb.Customer.retrieve("anyone")
    assert (error.value.http_status_code, error.value.api_error_code) == (status, api_error_code)
    if status == 429:
        assert error.value.http_headers["retry-after"] == "1"

    with pytest.raises(InvalidRequestError):  # only one request was faulted: this one reaches the fake
        cb.Customer.retrieve("anyone")
    assert [call.faulted for call in fake.calls("GET", "/customers/*")] == [True, False]


def test_fail_after_lets_some_requests_through_and_clear_faults_ends_it(cb, fake):
    fake.fail_after(1, count=5, status=500, path="/customers/*")
    with pytest.raises(InvalidRequestError):  # the first one passes, and finds nothing
        cb.Customer.retrieve("nobody")
    with pytest.raises(OperationFailedError):
        cb.Customer.retrieve("nobody")

    fake.clear_faults()
    fake.create_customer(id="org_1", company="Acme", meta_data={"organizationId": "org_1"})
    assert cb.Customer.retrieve("org_1").customer.meta_data == {"organizationId": "org_1"}
    assert fake.get_customer("org_1")["company"] == "Acme"
    assert fake.get_customer("nobody") is None


def test_fail_next_timeout_makes_the_client_time_out(cb, fake):
    cb.update_read_timeout_secs(0.05)
    fake.fail_next(1, path="/customers", method="POST", timeout_seconds=0.2)
    answered = threading.Event()
    fake.on_event(lambda event: answered.set())

    with pytest.raises(httpx.ReadTimeout):
        cb.Customer.create({"id": "slow"})
    assert answered.wait(5)  # the slow request still completes on the server, as on a real one
    assert cb.Customer.retrieve("slow").customer.id == "slow"


def test_events_are_recorded_and_passed_to_listeners(cb, fake):
    received = []
    fake.on_event(received.append)

    cb.Customer.create({"id": "org_1"})
    fake.complete_hosted_page(open_checkout(cb, sub_id="sub_1").id)
    fake.change_seats("sub_1", 7)
    fake.cancel_subscription("sub_1", end_of_term=False)

    listed = [entry.event for entry in cb.Event.list({"limit": 100}).list]
    assert [event["id"] for event in reversed(received)] == [event.id for event in listed]
    assert [event.event_type for event in listed] == [
        "subscription_cancelled",
        "subscription_changed",
        "payment_source_added",
        "payment_succeeded",
        "invoice_generated",
        "subscription_created",
        "customer_created",
    ]
    changed = cb.Event.retrieve(listed[1].id).event
    assert (changed.api_version, changed.webhook_status) == ("v2", "scheduled")
    assert changed.content["subscription"]["subscription_items"][0]["quantity"] == 7
    assert changed.content["customer"]["id"] == "org_1"


def test_a_failing_listener_does_not_fail_the_api(cb, fake):
    fake.on_event(lambda event: 1 / 0)
    assert cb.Customer.create({"id": "org_1"}).customer.id == "org_1"


def test_resource_version_strictly_increases(cb, fake):
    versions = [fake.create_subscription("org_1", "team-monthly", 1, id="sub_1")["resource_version"]]
    for seats in range(2, 12):
        versions.append(fake.change_seats("sub_1", seats)["resource_version"])
    versions.append(cb.Subscription.cancel_for_items("sub_1", {"end_of_term": True}).subscription.resource_version)
    assert versions == sorted(set(versions))


def test_clock_is_injectable_and_versions_grow_within_one_millisecond():
    fake = FakeChargebee(clock=lambda: 1_700_000_000.0)  # 2023-11-14T22:13:20Z, frozen
    sub = fake.create_subscription("org_1", "team-monthly", 1, id="sub_1")
    assert (sub["created_at"], sub["current_term_end"]) == (1_700_000_000, 1_702_592_000)  # 2023-12-14
    assert fake.change_seats("sub_1", 2)["resource_version"] > sub["resource_version"]
    assert fake.get_subscription("sub_1")["subscription_items"][0]["quantity"] == 2


def test_call_log_and_idempotent_replay(cb, fake):
    headers = {"chargebee-idempotency-key": "key-1"}
    first = cb.Customer.create({"id": "org_1", "company": "Acme"}, headers=headers)
    again = cb.Customer.create({"id": "org_1", "company": "Acme"}, headers=headers)

    assert again.customer.resource_version == first.customer.resource_version
    assert again.is_idempotency_replayed is True
    (call, _) = fake.calls("POST", "/customers")
    assert call.params == {"id": "org_1", "company": "Acme"}
    assert call.headers["chargebee-idempotency-key"] == "key-1"
    fake.reset_calls()
    assert fake.calls() == []


def test_portal_session(cb):
    cb.Customer.create({"id": "org_1"})
    session = cb.PortalSession.create(
        {"customer": {"id": "org_1"}, "redirect_url": "https://app.example/billing"}
    ).portal_session
    assert (session.status, session.customer_id, session.redirect_url) == (
        "created",
        "org_1",
        "https://app.example/billing",
    )
    assert session.access_url.endswith(session.token)
    with pytest.raises(InvalidRequestError):
        cb.PortalSession.create({"customer": {"id": "nope"}})


def test_concurrent_requests_are_safe(cb):
    failures = []

    def create(n):
        try:
            cb.Customer.create({"id": f"org_{n}"})
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            failures.append(error)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert len(cb.Customer.list({"limit": 100}).list) == 20


def test_state_survives_in_a_file(tmp_path):
    path = str(tmp_path / "chargebee.sqlite3")
    FakeChargebee(path).create_subscription("org_1", "team-monthly", 2, id="sub_1")
    assert FakeChargebee(path).store.require("subscription", "sub_1")["subscription_items"][0]["quantity"] == 2


def test_served_under_a_prefix(fake, monkeypatch):
    def mounted(environ, start_response):
        environ["SCRIPT_NAME"], environ["PATH_INFO"] = "/fake-chargebee", environ["PATH_INFO"][len("/fake-chargebee") :]
        return fake(environ, start_response)

    with serve(mounted) as server:
        cb = sdk_client(server, monkeypatch)
        cb.env.api_endpoint = server.url.replace("/api/v2", "/fake-chargebee/api/v2")
        page = open_checkout(cb)
    assert f":{server.port}/fake-chargebee/pages/v3/" in page.url
