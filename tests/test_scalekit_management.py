"""The Scalekit management client over real HTTP: against the sandbox's fake Scalekit, and against a scripted
server for the faults (401, 429 with Retry-After, 5xx, timeouts) whose handling the client promises."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orgbilling import scalekit_management
from orgbilling.scalekit_management import ScalekitError, ScalekitManagement
from sandbox import organizations, runtime
from sandbox.webhook_sender import DROPPED
from tests.sandbox_support import sandbox, send_webhooks_to, served_app  # noqa: F401  (fixtures)
from tests.test_sandbox_webhooks import Receiver

ORGANIZATION_FIELDS = {
    "id",
    "display_name",
    "external_id",
    "metadata",
    "region_code",
    "create_time",
    "update_time",
    "settings",
}


class _HangUpTolerantServer(ThreadingHTTPServer):
    """A client that timed out on a held answer hangs up; that is the test working, not a traceback to print."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Recorder:
    """A sleeper and a clock the tests control: nothing waits for real."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.now = 1000.0

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def clock(self) -> float:
        return self.now


@pytest.fixture
def recorder():
    return Recorder()


def sandbox_client(settings, recorder: Recorder, **overrides) -> ScalekitManagement:
    options = {
        "env_url": settings.SCALEKIT_ENV_URL,
        "client_id": settings.SCALEKIT_CLIENT_ID,
        "client_secret": settings.SCALEKIT_CLIENT_SECRET,
        "sleep": recorder.sleep,
        "clock": recorder.clock,
        **overrides,
    }
    return ScalekitManagement(**options)


def test_lists_every_organization_100_a_page_with_scalekits_shape(settings, served_app, recorder):  # noqa: F811
    directory = runtime.directory()
    with directory.store.transaction():
        created = {directory.create_organization(f"Org {n}")["id"] for n in range(150)}

    pages = list(sandbox_client(settings, recorder).iter_organizations())

    assert [len(page) for page in pages] == [100, 50]
    assert {org["id"] for page in pages for org in page} == created
    assert all(set(org) == ORGANIZATION_FIELDS for page in pages for org in page)


def test_gets_one_organization_and_says_not_found_for_a_missing_one(settings, served_app, recorder):  # noqa: F811
    acme = runtime.directory().create_organization("Acme", "ext-acme")
    client = sandbox_client(settings, recorder)

    organization = client.get_organization(acme["id"])
    with pytest.raises(ScalekitError) as missing:
        client.get_organization("org_404")

    assert (organization["display_name"], organization["external_id"]) == ("Acme", "ext-acme")
    assert set(organization) == ORGANIZATION_FIELDS
    assert missing.value.not_found and not missing.value.retryable


def test_retries_an_injected_503_then_answers(settings, served_app, recorder):  # noqa: F811
    runtime.directory().create_organization("Acme")
    runtime.scalekit_faults().fail_next(2, 503)

    pages = list(sandbox_client(settings, recorder, backoff=0.5).iter_organizations())

    assert [org["display_name"] for org in pages[0]] == ["Acme"]
    assert recorder.sleeps == [0.5, 1.0]


def test_a_wrong_secret_is_one_error_without_retries(settings, served_app, recorder):  # noqa: F811
    client = sandbox_client(settings, recorder, client_secret="wrong")

    with pytest.raises(ScalekitError, match="refused the client credentials"):
        client.get_organization("org_1")
    assert recorder.sleeps == []


def test_the_fake_refuses_calls_without_a_client_credentials_token(served_app):  # noqa: F811
    import httpx

    answer = httpx.get(f"{served_app}/sandbox/scalekit/api/v1/organizations")

    assert answer.status_code == 401
    assert answer.json()["code"] == 16


def test_get_client_is_built_from_settings_and_kept_per_process(settings, served_app):  # noqa: F811
    first = scalekit_management.get_client()

    assert scalekit_management.get_client() is first
    assert first.env_url == settings.SCALEKIT_ENV_URL
    settings.SCALEKIT_READ_TIMEOUT = 3
    assert scalekit_management.get_client() is not first


# ----- faults, from a scripted server --------------------------------------------------------------


class Scripted:
    """A local HTTP server answering each path from a script: (status, headers, body) or ("sleep", seconds)."""

    def __init__(self) -> None:
        self.script: dict[str, list] = {}
        self.requests: list[tuple[str, str, str]] = []  # (method, path, authorization)
        self.tokens_issued = 0
        self.stopping = threading.Event()  # a held ("sleep") answer goes out at once when the server stops
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                path = self.path.split("?")[0]
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                scripted.requests.append((self.command, self.path, self.headers.get("Authorization", "")))
                queue = scripted.script.get(path) or []
                step = queue.pop(0) if queue else None
                if step and step[0] == "sleep":
                    scripted.stopping.wait(step[1])  # a slow answer, not a sleeping test (tests/timing.py)
                    step = None
                if step is None and path == "/oauth/token":
                    scripted.tokens_issued += 1
                    step = (200, {}, {"access_token": f"tok{scripted.tokens_issued}", "expires_in": 300})
                status, headers, body = step or (200, {}, {"organization": {"id": "org_1"}})
                payload = json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = _answer  # noqa: N815  (http.server's naming)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self.server = _HangUpTolerantServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def api_calls(self) -> list[tuple[str, str, str]]:
        return [request for request in self.requests if request[1].startswith("/api/")]

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted():
    server = Scripted()
    yield server
    server.stop()


def scripted_client(scripted: Scripted, recorder: Recorder, **overrides) -> ScalekitManagement:
    options = {"env_url": scripted.url, "client_id": "skc_1", "client_secret": "s3cret"}
    return ScalekitManagement(**options, sleep=recorder.sleep, clock=recorder.clock, **overrides)


def test_token_is_cached_until_shortly_before_it_expires(scripted, recorder):
    client = scripted_client(scripted, recorder)

    client.get_organization("org_1")
    recorder.now += 300 - scalekit_management.TOKEN_MARGIN - 1
    client.get_organization("org_1")
    recorder.now += 2  # now within the margin: a new token
    client.get_organization("org_1")

    assert scripted.tokens_issued == 2
    assert [auth for _, _, auth in scripted.api_calls()] == ["Bearer tok1", "Bearer tok1", "Bearer tok2"]


def test_a_401_fetches_a_new_token_once_and_no_token_or_secret_is_logged(scripted, recorder, caplog):
    caplog.set_level("DEBUG")
    unauthorized = (401, {}, {"code": 16, "message": "token expired"})
    path = "/api/v1/organizations/org_1"
    client = scripted_client(scripted, recorder)
    scripted.script[path] = [unauthorized]

    assert client.get_organization("org_1") == {"id": "org_1"}
    assert scripted.tokens_issued == 2

    scripted.script[path] = [unauthorized, unauthorized, unauthorized]
    with pytest.raises(ScalekitError) as refused:
        client.get_organization("org_1")
    assert refused.value.http_status == 401
    assert scripted.tokens_issued == 3  # one more, not one per 401
    assert recorder.sleeps == []
    assert "management token was refused" in caplog.text
    assert not any(secret in caplog.text for secret in ("tok1", "tok2", "tok3", "s3cret"))


def test_429_waits_at_least_retry_after_and_retries_are_bounded(scripted, recorder):
    path = "/api/v1/organizations/org_1"
    client = scripted_client(scripted, recorder, max_retries=2, backoff=0.5)
    scripted.script[path] = [(429, {"Retry-After": "7"}, {"code": 8, "message": "slow down"})]

    assert client.get_organization("org_1") == {"id": "org_1"}
    assert recorder.sleeps == [7.0]

    scripted.script[path] = [(502, {}, {})] * 5
    with pytest.raises(ScalekitError) as failed:
        client.get_organization("org_1")
    assert failed.value.http_status == 502
    assert len(scripted.script[path]) == 2  # 3 tries: the first and 2 retries
    assert recorder.sleeps == [7.0, 0.5, 1.0]


def test_a_timeout_is_retried_then_reported_as_one_error(scripted, recorder):
    path = "/api/v1/organizations/org_1"
    client = scripted_client(scripted, recorder, read_timeout=0.2, max_retries=1)
    client.get_organization("org_1")  # the token first, so only the API call times out
    scripted.script[path] = [("sleep", 0.5), ("sleep", 0.5)]

    with pytest.raises(ScalekitError) as timed_out:
        client.get_organization("org_1")

    assert timed_out.value.code == "timeout" and timed_out.value.retryable
    assert len(recorder.sleeps) == 1


def test_client_errors_are_not_retried_and_keep_scalekits_message(scripted, recorder):
    scripted.script["/api/v1/organizations/org_1"] = [(400, {}, {"code": 3, "message": "invalid organization id"})]

    with pytest.raises(ScalekitError, match="invalid organization id"):
        scripted_client(scripted, recorder).get_organization("org_1")
    assert recorder.sleeps == []


def test_missing_settings_are_named():
    with pytest.raises(ScalekitError, match="SCALEKIT_ENV_URL"):
        ScalekitManagement(env_url="", client_id="", client_secret="")


# ----- the outage knob ------------------------------------------------------------------------------


def test_drop_knob_keeps_scalekit_webhooks_aside_until_released(sandbox):  # noqa: F811
    receiver = Receiver()
    send_webhooks_to(sandbox, receiver.url)
    sender = runtime.sender()
    sender.knobs.drop_scalekit = True
    try:
        organizations.create("Acme")
        runtime.chargebee().create_customer("cus_1")  # Chargebee's webhooks still go out
        assert sender.wait_idle(10)
        assert [event.get("type") or event.get("event_type") for event in receiver.events()] == ["customer_created"]
        assert sender.attempts()[-1].error == DROPPED

        assert sender.release_dropped() == 1
        assert sender.wait_idle(10)
        assert receiver.events()[-1]["type"] == "organization.created"
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def test_the_sandbox_page_turns_the_outage_on_and_sends_what_was_dropped(client, sandbox):  # noqa: F811
    client.post("/sandbox/knobs", {"delay": "0", "drop_scalekit": "on"})
    assert runtime.sender().knobs.drop_scalekit
    organizations.create("Acme")

    page = client.get("/sandbox/").content.decode()
    assert 'name="drop_scalekit" checked' in page
    assert "Send the 1 dropped Scalekit webhook(s) late" in page

    client.post("/sandbox/knobs", {"release_dropped": "1"})
    assert runtime.sender().dropped() == []
