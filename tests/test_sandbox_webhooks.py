"""Webhooks the sandbox vendors send: signed Scalekit organization events the app accepts, and Chargebee
events with Basic Auth, delayed, duplicated, out of order or retried as the knobs say."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from scalekit import ScalekitClient

from orgbilling.models import Organization, WebhookDelivery
from sandbox import outbound, runtime
from sandbox.webhook_sender import Knobs, WebhookSender
from tests.conftest import sample
from tests.sandbox_support import sandbox, send_webhooks_to, served_app  # noqa: F401  (fixtures)

VECTORS = "scalekit/signature_vectors/vectors.json"


class Receiver:
    """A stand-in for the app's webhook endpoints: records each POST, answers with the queued statuses."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def events(self) -> list[dict]:
        return [json.loads(body) for _, _, body in self.requests]


@pytest.fixture
def receiver(sandbox):  # noqa: F811
    receiver = Receiver()
    send_webhooks_to(sandbox, receiver.url)
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def test_signature_matches_scalekit_vectors_and_the_sdk_verifier():
    vector = next(v for v in sample(VECTORS) if v["name"] == "java_vector_valid")
    headers = vector["headers"]
    body = vector["payload"].encode()

    signature = outbound.standard_webhooks_signature(
        vector["secret"], headers["webhook-id"], headers["webhook-timestamp"], body
    )

    assert signature == headers["webhook-signature"]


def test_organization_event_is_shaped_like_the_vendor_sample_and_verifies_with_the_sdk(sandbox, receiver):  # noqa: F811
    organization = runtime.directory().create_organization("Acme", "ext-1")
    outbound_event = outbound.organization_event("organization.created", organization)
    reference = sample("scalekit/webhooks/organization.created.json")
    assert outbound_event.keys() == reference.keys()
    assert outbound_event["data"].keys() == reference["data"].keys()

    runtime.sender().send(outbound.scalekit_delivery(outbound_event))
    assert runtime.sender().wait_idle(10)

    path, headers, body = receiver.requests[0]
    assert path == "/api/webhooks/scalekit"
    lowercase = {name.lower(): value for name, value in headers.items()}
    verifier = ScalekitClient.__new__(ScalekitClient)  # its webhook check needs no network, unlike its constructor
    assert verifier.verify_webhook_payload(sandbox.SCALEKIT_WEBHOOK_SECRET, lowercase, body) is True
    assert json.loads(body)["data"]["display_name"] == "Acme"


@pytest.mark.django_db(transaction=True)
def test_organizations_page_provisions_the_organization_through_the_app(client, served_app):  # noqa: F811
    answer = client.post("/sandbox/scalekit/organizations", {"action": "create", "display_name": "Initech"})
    assert answer.status_code == 302
    assert runtime.sender().wait_idle(20)

    assert b"Initech" in client.get("/sandbox/scalekit/organizations").content
    organization = Organization.objects.get(display_name="Initech")
    assert runtime.chargebee().get_customer(organization.pk) is not None  # the app made its Chargebee customer
    rename = {"action": "rename", "organization_id": organization.pk, "display_name": "Initrode"}
    client.post("/sandbox/scalekit/organizations", rename)
    assert runtime.sender().wait_idle(20)
    organization.refresh_from_db()
    assert organization.display_name == "Initrode"
    assert all(attempt.ok for attempt in runtime.sender().attempts())
    kinds = set(WebhookDelivery.objects.values_list("event_type", flat=True))
    assert {"organization.created", "organization.updated", "customer_created"} <= kinds


def test_chargebee_events_are_sent_with_basic_auth(sandbox, receiver):  # noqa: F811
    customer = runtime.chargebee().create_customer("org_1")
    assert runtime.sender().wait_idle(10)

    path, headers, body = receiver.requests[0]
    assert path == "/api/webhooks/chargebee"
    expected = base64.b64encode(
        f"{sandbox.CHARGEBEE_WEBHOOK_USERNAME}:{sandbox.CHARGEBEE_WEBHOOK_PASSWORD}".encode()
    ).decode()
    assert headers["Authorization"] == f"Basic {expected}"
    event = json.loads(body)
    assert (event["event_type"], event["content"]["customer"]["id"]) == ("customer_created", customer["id"])


def test_duplicate_knob_sends_every_event_twice(sandbox, receiver):  # noqa: F811
    runtime.sender().knobs.duplicate = True
    runtime.chargebee().create_customer("org_1")
    assert runtime.sender().wait_idle(10)

    events = receiver.events()
    assert len(events) == 2 and events[0] == events[1]


def test_out_of_order_knob_reverses_each_batch(sandbox, receiver):  # noqa: F811
    fake = runtime.chargebee()
    runtime.sender().knobs.out_of_order = True
    fake.create_subscription("org_1", sandbox.CHARGEBEE_PLAN_ITEM_PRICE_ID, 2, id="sub_1")
    fake.change_seats("sub_1", 3)
    fake.cancel_subscription("sub_1", end_of_term=True)
    assert runtime.sender().wait_idle(10)

    assert [event["event_type"] for event in receiver.events()] == [
        "subscription_cancellation_scheduled",
        "subscription_changed",
        "subscription_created",
        "customer_created",
    ]


def test_failed_deliveries_are_retried_then_given_up(receiver):
    sender = WebhookSender(Knobs(delay=0), retries=2, retry_pause=0.01)
    receiver.statuses = [500, 503, 500]
    event = {"id": "ev_1", "event_type": "customer_created"}
    sender.send(outbound.chargebee_delivery(event))
    assert sender.wait_idle(10)

    assert [(attempt.number, attempt.status) for attempt in sender.attempts()] == [(3, 500), (2, 503), (1, 500)]
    receiver.statuses = [502]
    sender.send(outbound.chargebee_delivery(event))
    assert sender.wait_idle(10)
    assert sender.attempts()[0].ok and sender.attempts()[0].number == 2
    sender.close()


def test_knobs_page_changes_delivery(client, sandbox):  # noqa: F811
    answer = client.post("/sandbox/knobs", {"delay": "2.5", "duplicate": "on"})
    assert answer.status_code == 302
    knobs = runtime.sender().knobs
    assert (knobs.delay, knobs.duplicate, knobs.out_of_order) == (2.5, True, False)
    assert client.post("/sandbox/knobs", {"delay": "-1"}).status_code == 302
    assert runtime.sender().knobs.delay == 2.5
    page = client.get("/sandbox/")
    assert page.status_code == 200
    assert b'name="duplicate" checked' in page.content


def test_faults_page_makes_api_calls_fail(client, sandbox):  # noqa: F811
    key = base64.b64encode(f"{sandbox.CHARGEBEE_API_KEY}:".encode()).decode()
    api = "/sandbox/chargebee/api/v2/customers"
    client.post("/sandbox/faults", {"count": "1", "kind": "429"})
    client.post("/sandbox/faults", {"count": "1", "kind": "503"})

    limited = client.get(api, HTTP_AUTHORIZATION=f"Basic {key}")
    assert (limited.status_code, limited["Retry-After"]) == (429, "1")
    assert limited.json()["api_error_code"] == "api_request_limit_exceeded"
    assert client.get(api, HTTP_AUTHORIZATION=f"Basic {key}").status_code == 503
    assert client.get(api, HTTP_AUTHORIZATION=f"Basic {key}").status_code == 200

    client.post("/sandbox/faults", {"count": "5", "kind": "500"})
    client.post("/sandbox/faults", {"clear": "1"})
    assert client.get(api, HTTP_AUTHORIZATION=f"Basic {key}").status_code == 200
    assert client.get(api, HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"wrong:").decode()).status_code == 401
