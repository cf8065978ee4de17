"""Helpers for tests that run servers in other processes: free ports, gunicorn, a client over real HTTP."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 60
TIMEOUT = 60  # seconds for one request over real HTTP


def free_port() -> int:
    """A port nothing listens on right now (bound to port 0, then released for the server to take)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(env: dict[str, str], log: Path, *, workers: int = 4, threads: int = 1) -> Iterator[str]:
    """The project under gunicorn with its production config (``billing_project/gunicorn.conf.py``).

    ``env`` is added to this process's environment (``APP_URL`` is set to the
    server's); yields the base URL once it listens, stops the server on exit.
    ``threads`` above 1 gives gthread workers: more requests at once from fewer processes.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "-c",
        "billing_project/gunicorn.conf.py",
        "billing_project.wsgi:application",
        f"--bind=127.0.0.1:{port}",
        f"--workers={workers}",
        f"--threads={threads}",
        "--timeout=120",
    ]
    with log.open("w") as output:
        server = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, "APP_URL": url, **env}, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _listening(port):  # a real-process wait, bounded
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        _warm_up(url, workers * threads)
        yield url
    finally:
        server.terminate()
        server.wait(STARTUP_SECONDS)


def _warm_up(url: str, handlers: int) -> None:
    """Requests at once, twice as many as the server handles at once, so every worker has served one.

    A worker loads Django's URLconf (and with it orgbilling's views) on its first
    request, which takes seconds on a loaded machine: not what a test times.
    """
    with ThreadPoolExecutor(2 * handlers) as pool:
        answers = list(pool.map(lambda _: LiveClient(url).get("/api/webhooks/scalekit"), range(2 * handlers)))
    assert {answer.status_code for answer in answers} == {405}, answers  # POST only: nothing done


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@dataclass
class LiveResponse:
    status_code: int
    content: bytes
    headers: http.client.HTTPMessage
    seconds: float  # from connecting to the last byte of the answer

    def __getitem__(self, name: str) -> str:
        return self.headers[name]

    def json(self) -> object:
        return json.loads(self.content)


@dataclass
class LiveClient:
    """The Django test client's ``get`` and ``post``, sent over real HTTP to a served app.

    So helpers written for the test client (``post_event``, ``scalekit_headers``'
    ``HTTP_*`` keywords) work unchanged against real server processes. One
    connection per request; cookies the server sets are kept and sent back;
    redirects are not followed.
    """

    base_url: str
    cookies: dict[str, str] = field(default_factory=dict)

    def get(self, path: str, **meta: str) -> LiveResponse:
        return self._send("GET", path, None, meta)

    def post(self, path: str, data: dict | bytes | str = b"", content_type: str = "", **meta: str) -> LiveResponse:
        if isinstance(data, dict):
            data, content_type = urlencode(data).encode(), "application/x-www-form-urlencoded"
        body = data.encode() if isinstance(data, str) else data
        return self._send("POST", path, body, {"CONTENT_TYPE": content_type or "application/octet-stream", **meta})

    def _send(self, method: str, path: str, body: bytes | None, meta: dict[str, str]) -> LiveResponse:
        headers = {_header_name(key): value for key, value in meta.items()}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        parts = urlsplit(self.base_url)
        started = time.monotonic()
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
        try:
            conn.request(method, parts.path.rstrip("/") + path, body, headers)
            response = conn.getresponse()
            content = response.read()
        finally:
            conn.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            self.cookies.update({name: morsel.value for name, morsel in SimpleCookie(header).items()})
        return LiveResponse(response.status, content, response.headers, time.monotonic() - started)


def _header_name(meta_key: str) -> str:
    """``HTTP_WEBHOOK_ID`` -> ``Webhook-Id``; ``CONTENT_TYPE`` -> ``Content-Type`` (WSGI's naming, reversed)."""
    name = meta_key.removeprefix("HTTP_")
    return "-".join(word.capitalize() for word in name.split("_"))


def app_environment(chargebee_url: str, scalekit_url: str, **extra: str) -> dict[str, str]:
    """What a served app runs with: the test database, the fake Chargebee at ``chargebee_url``, SANDBOX off.

    Sign-in checks tokens against the ``ScalekitStub`` at ``scalekit_url`` (its
    JWKS); the SDK's client is never called, since sessions made by
    ``ScalekitStub.sign_in`` are not expired (nothing to refresh), so it is a
    placeholder instead of a client that would ask the stub's token endpoint.
    """
    from tests.conftest import CHARGEBEE_PASSWORD, CHARGEBEE_USER, SCALEKIT_SECRET
    from tests.scalekit_support import CLIENT_ID, COOKIE_SECRET
    from tests.worker_support import database_url

    return {
        "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
        "ORGBILLING_TEST_SETTINGS": json.dumps({"SCALEKIT_CLIENT": "unused: no session here needs refreshing"}),
        "DATABASE_URL": database_url(),
        "SANDBOX": "false",
        "DEBUG": "true",
        "SCALEKIT_ENV_URL": scalekit_url,
        "SCALEKIT_CLIENT_ID": CLIENT_ID,
        "SCALEKIT_CLIENT_SECRET": "test-client-secret",
        "SCALEKIT_COOKIE_ENCRYPTION_SECRET": COOKIE_SECRET,
        "SCALEKIT_WEBHOOK_SECRET": SCALEKIT_SECRET,
        "CHARGEBEE_SITE": "orgbilling-test",
        "CHARGEBEE_API_KEY": "test_key",
        "CHARGEBEE_API_BASE_URL": chargebee_url,
        "CHARGEBEE_PLAN_ITEM_PRICE_ID": "team-plan-USD-monthly",
        "CHARGEBEE_WEBHOOK_USERNAME": CHARGEBEE_USER,
        "CHARGEBEE_WEBHOOK_PASSWORD": CHARGEBEE_PASSWORD,
        "REDIS_URL": "",
        **extra,
    }


def subscribe_click(client: LiveClient, seats: int = 2) -> LiveResponse:
    """What a browser does on the billing page's Subscribe button: load the page, post its form.

    Answers the POST's response (a 303 to the hosted checkout when it worked);
    its ``seconds`` are the click's alone.
    """
    page = client.get("/billing")
    assert page.status_code == 200, page.content[:500]
    html = page.content.decode()
    form = {"csrfmiddlewaretoken": re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)[1]}
    if plan := re.search(r'<input type="hidden" name="plan" value="([^"]+)"', html):
        form["plan"] = plan[1]
    return client.post("/billing/subscribe", {**form, "seats": str(seats)})
