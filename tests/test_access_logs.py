"""The README's commands never log what the README says is never logged (issue 11, item 7).

The production command and ``bin/demo`` are read out of README.md and run as
written (only the address to bind changes: a free port), then sent a sign-in
callback, a checkout success return, a portal return whose ``Referer`` carries
the portal's access URL, a request with a Bearer token and a Chargebee webhook
with Basic Auth. None of those secrets may appear in the output, while the
access log does name each request by its URL pattern.
"""

from __future__ import annotations

import base64
import os
import re
import runpy
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.test_production import PRODUCTION_ENV

pytestmark = pytest.mark.real_time  # runs the README's servers as processes and waits for them

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 180  # seconds: migrations and the demo's setup run first

CODE, STATE, HOSTED_PAGE = "code-7Hq2Secret", "state-K9pSecret", "hp-3xYSecret"
ACCESS_TOKEN, BASIC_USER = "portal-access-Z81Secret", "hook-user-Q4Secret"
SECRETS = (CODE, STATE, HOSTED_PAGE, ACCESS_TOKEN, BASIC_USER)


def readme_block(after: str) -> list[str]:
    """The command lines of the first ```sh block after the text ``after`` in README.md, comments dropped."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text[text.index(after) :], re.DOTALL)
    return [line.split("  #")[0].strip() for line in block[1].splitlines() if line.strip()]


def readme_command(after: str, starts: str) -> list[str]:
    return shlex.split(next(line for line in readme_block(after) if line.startswith(starts)))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_env(**values: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SCALEKIT_", "CHARGEBEE_", "DATABASE_URL"))}
    return {**keep, **values}


class Server:
    """A process whose output is collected line by line; ``ready`` is set once a line matches ``ready_when``."""

    def __init__(self, command: list[str], env: dict[str, str], ready_when: str) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.match: re.Match | None = None
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.reader = threading.Thread(target=self._read, args=(re.compile(ready_when),), daemon=True)
        self.reader.start()

    def _read(self, ready_when: re.Pattern) -> None:
        for raw in self.process.stdout:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            if not self.ready.is_set() and (match := ready_when.search(line)):
                self.match = match
                self.ready.set()
        self.ready.set()  # the process ended: stop waiting

    def wait_ready(self) -> re.Match:
        self.ready.wait(STARTUP_TIMEOUT)
        assert self.match is not None, "".join(self.lines)[-4000:]
        return self.match

    def stop(self) -> str:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=60)
        self.reader.join(timeout=10)
        return "".join(self.lines)


@contextmanager
def running(command: list[str], env: dict[str, str], ready_when: str) -> Iterator[Server]:
    server = Server(command, env, ready_when)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGTERM)


def visit(base_url: str, **headers: str) -> None:
    """The requests whose secrets must stay out of the logs; answers do not matter (most are refusals)."""
    # Connection refused while the server binds is retried (the transport's own backoff).
    with httpx.Client(base_url=base_url, headers=headers, timeout=60, transport=httpx.HTTPTransport(retries=8)) as http:
        http.get(f"/auth/callback?code={CODE}&state={STATE}")
        http.get(f"/api/subscription/success?id={HOSTED_PAGE}&state=succeeded")
        portal = f"https://acme.chargebeeportal.com/portal/v2/access/{ACCESS_TOKEN}"
        http.get("/billing/portal/return", headers={"Referer": portal})
        http.get("/api/session", headers={"Authorization": f"Bearer {ACCESS_TOKEN}"})
        basic = base64.b64encode(f"{BASIC_USER}:wrong-password".encode()).decode()
        webhook = http.post(
            "/api/webhooks/chargebee", content=b'{"id": "ev_1"}', headers={"Authorization": f"Basic {basic}"}
        )
        assert webhook.status_code == 401


def assert_nothing_secret(output: str) -> None:
    for secret in SECRETS:
        assert secret not in output, f"{secret} logged:\n{output[-4000:]}"
    for route in ("/auth/callback", "/api/subscription/success", "/billing/portal/return", "/api/webhooks/chargebee"):
        assert f"GET {route}" in output or f"POST {route}" in output, output[-4000:]


def test_item7_readme_production_command_logs_no_secrets(tmp_path):
    env = clean_env(
        **{
            **PRODUCTION_ENV,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "SECURE_PROXY_SSL_HEADER": "true",
            "SCALEKIT_ENV_URL": "http://127.0.0.1:9",  # nothing listens: sign-in answers 503, quickly
            "LOG_FORMAT": "plain",
        }
    )
    for starts in ("python manage.py migrate", "python manage.py collectstatic"):
        setup = [sys.executable, *readme_command("- Deploy:", starts)[1:]]
        result = subprocess.run(setup, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    command = readme_command("- Deploy:", "gunicorn ")
    assert "0.0.0.0:8000" in command
    command = [str(Path(sys.executable).with_name("gunicorn")), *command[1:]]
    command[command.index("0.0.0.0:8000")] = "127.0.0.1:0"
    with running(command, env, r"Listening at: http://127\.0\.0\.1:(\d+)") as server:
        port = server.wait_ready()[1]
        host = {"Host": "billing.example.com", "X-Forwarded-Proto": "https"}
        visit(f"http://127.0.0.1:{port}", **host)
        output = server.stop()
    assert_nothing_secret(output)


def test_item7_bin_demo_logs_no_secrets(tmp_path):
    assert readme_block("# orgbilling")[0] == "bin/demo"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env(
        PORT=str(port),
        APP_URL=url,
        DEBUG="true",
        SANDBOX="true",
        SANDBOX_DIR=str(tmp_path / "sandbox"),
        SANDBOX_WEBHOOK_DELAY="0",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)
    with running(["bin/demo"], env, r"Quit the server with") as server:
        server.wait_ready()
        visit(url)
        output = server.stop()
    assert_nothing_secret(output)


def test_item8_gunicorn_error_and_access_lines_are_escaped(capsys):
    from gunicorn.config import Config

    from orgbilling.log_format import PlainFormatter

    settings = runpy.run_path(str(ROOT / "billing_project" / "gunicorn.conf.py"))
    config = Config()
    for name in ("accesslog", "access_log_format", "logger_class"):
        config.set(name, settings[name])
    logger = config.logger_class(config)
    handlers = [*logger.error_log.handlers, *logger.access_log.handlers]
    assert handlers and all(isinstance(handler.formatter, PlainFormatter) for handler in handlers)
    logger.warning("Invalid request from ip=%s: %s", "127.0.0.1", "Invalid HTTP request line: 'GET /\nFORGED'")
    written = capsys.readouterr()
    assert "\\nFORGED" in written.err and "\nFORGED" not in written.err
