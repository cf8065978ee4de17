"""orgbilling as another project installs it: the wheel, a fresh virtualenv, a fresh startproject, the README's steps.

The steps are read from the README's "Using orgbilling in your own project"
section and run as written: shell blocks line by line (``pip install
orgbilling`` finds the wheel through ``PIP_FIND_LINKS``), Python blocks
appended to the file their first line names. The vendor settings point at the
repository's fake vendors, served by the reference project's sandbox in a
separate server; then a signed Scalekit webhook and a Chargebee webhook go
through the installed app, served by its own ``runserver``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orgbilling import scalekit_signature
from sandbox import settings_overlay
from tests.chargebee_payloads import pc2_event, pc2_subscription
from tests.conftest import sample
from tests.processes import free_port

pytestmark = [pytest.mark.install, pytest.mark.real_time]  # waits on pip and on two server processes

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Using orgbilling in your own project"
STARTUP_TIMEOUT = 60
ORGANIZATION = sample("scalekit/webhooks/organization.created.json")
ORG_ID = ORGANIZATION["organization_id"]


def readme_steps() -> list[tuple[str, str]]:
    """The section's fenced blocks, in order, as (language, dedented code)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^( *)```(\w+)\n(.*?)^\1```", section, flags=re.MULTILINE | re.DOTALL)
    return [(language, textwrap.dedent(code)) for _, language, code in blocks]


def test_the_readme_has_install_settings_urls_and_commands():
    kinds = [(language, code.splitlines()[0]) for language, code in readme_steps()]
    assert kinds == [
        ("sh", "python -m pip install orgbilling"),
        ("python", "# settings.py"),
        ("python", "# urls.py"),
        ("sh", "python manage.py migrate"),
    ]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source") / "orgbilling"
    # Built from a copy: setuptools leaves build/ and *.egg-info beside the sources it builds.
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "var"))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(source)])
    [built] = out.glob("orgbilling-*.whl")
    return built


def test_the_wheel_holds_orgbilling_alone_with_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"orgbilling", wheel.name.split("-py3")[0] + ".dist-info"}
    for needed in (
        "orgbilling/templates/orgbilling/billing.html",
        "orgbilling/static/orgbilling/billing.css",
        "orgbilling/migrations/0001_initial.py",
        "orgbilling/management/commands/orgbilling_sync.py",
    ):
        assert needed in names
    assert any(name.endswith("licenses/LICENSE") for name in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: Django<6.2,>=5.2" in metadata
    assert "Provides-Extra: queue" in metadata
    assert not re.search(r"Requires-Dist: (gunicorn|whitenoise|django-environ|pytest|playwright)", metadata, re.I)


def run(command: list[str] | str, **kwargs) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def fake_vendors(tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    """The reference project's sandbox (fake Scalekit and Chargebee) as a separate server: its URL and secrets."""
    work = tmp_path_factory.mktemp("vendors")
    credentials = settings_overlay.load_credentials(work / "sandbox")  # the server reads the same files
    url = f"http://127.0.0.1:{free_port()}"
    env = {name: value for name, value in os.environ.items() if not name.startswith(("SCALEKIT_", "CHARGEBEE_"))}
    env.update(
        SANDBOX="true",
        DEBUG="true",
        APP_URL=url,
        SANDBOX_DIR=str(work / "sandbox"),
        DATABASE_URL=f"sqlite:///{work / 'db.sqlite3'}",
        DJANGO_SETTINGS_MODULE="billing_project.settings",
    )
    with serving([sys.executable, "manage.py", "runserver", "--noreload", url.removeprefix("http://")], ROOT, env):
        wait_until(f"{url}/sandbox/scalekit/keys")
        yield url, credentials


@pytest.fixture(scope="module")
def installed_site(tmp_path_factory, wheel, fake_vendors) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """A fresh virtualenv and startproject with the README's steps applied, served; its URL, folder and env."""
    vendors_url, credentials = fake_vendors
    work = tmp_path_factory.mktemp("site")
    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    url = f"http://127.0.0.1:{free_port()}"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SCALEKIT_", "CHARGEBEE_", "DJANGO_", "DATABASE_URL", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}",
        VIRTUAL_ENV=str(venv),
        PIP_FIND_LINKS=str(wheel.parent),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        APP_URL=url,
        SCALEKIT_ENV_URL=f"{vendors_url}/sandbox/scalekit",
        SCALEKIT_CLIENT_ID=credentials["scalekit_client_id"],
        SCALEKIT_CLIENT_SECRET=credentials["scalekit_client_secret"],
        SCALEKIT_WEBHOOK_SECRET=credentials["scalekit_webhook_secret"],
        SCALEKIT_COOKIE_ENCRYPTION_SECRET=credentials["scalekit_cookie_secret"],
        CHARGEBEE_SITE="sandbox",
        CHARGEBEE_API_KEY=credentials["chargebee_api_key"],
        CHARGEBEE_API_BASE_URL=f"{vendors_url}/sandbox/chargebee/api/v2",
        CHARGEBEE_PLAN_ITEM_PRICE_ID=settings_overlay.PLAN_ITEM_PRICE_ID,
        CHARGEBEE_WEBHOOK_USERNAME=credentials["chargebee_webhook_username"],
        CHARGEBEE_WEBHOOK_PASSWORD=credentials["chargebee_webhook_password"],
    )
    # The project exists before orgbilling comes along: its own Django (the newest this Python runs), startproject.
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "Django>=5.2,<6.2"], env=env)
    run([str(venv / "bin" / "django-admin"), "startproject", "mysite"], cwd=work, env=env)
    project = work / "mysite"
    for language, code in readme_steps():
        if language == "python":
            target = project / "mysite" / code.splitlines()[0].removeprefix("# ").strip()
            target.write_text(target.read_text() + "\n" + code)
        else:
            for line in code.splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    run(["bash", "-c", line], cwd=project, env=env)
    with serving([str(venv / "bin" / "python"), "manage.py", "runserver", "--noreload", url[7:]], project, env):
        wait_until(f"{url}/api/session", ok=(401,))
        yield url, project, env


def test_a_fresh_project_installs_migrates_checks_and_processes_both_vendors_webhooks(installed_site, fake_vendors):
    url, project, env = installed_site
    vendors_url, credentials = fake_vendors
    body = json.dumps(ORGANIZATION).encode()
    stamp, message = str(int(time.time())), "msg_install_1"
    signature = scalekit_signature.sign(credentials["scalekit_webhook_secret"], message, stamp, body)
    headers = {"webhook-id": message, "webhook-timestamp": stamp, "webhook-signature": signature}
    created = httpx.post(f"{url}/api/webhooks/scalekit", content=body, headers=headers, timeout=30)
    assert (created.status_code, created.json()["status"]) == (200, "processed"), created.text
    # Provisioning reached the fake Chargebee: the organization's customer exists there.
    customer = httpx.get(
        f"{vendors_url}/sandbox/chargebee/api/v2/customers/{ORG_ID}", auth=(credentials["chargebee_api_key"], "")
    )
    assert customer.status_code == 200 and customer.json()["customer"]["id"] == ORG_ID

    event = pc2_event("subscription_created", pc2_subscription("sub_cb_install", customer_id=ORG_ID))
    auth = (credentials["chargebee_webhook_username"], credentials["chargebee_webhook_password"])
    subscribed = httpx.post(f"{url}/api/webhooks/chargebee", json=event, auth=auth, timeout=30)
    assert (subscribed.status_code, subscribed.json()["status"]) == (200, "processed"), subscribed.text

    python = str(Path(env["VIRTUAL_ENV"]) / "bin" / "python")
    check = f"from orgbilling.models import Organization as O; print(O.objects.get(pk='{ORG_ID}').subscribed())"
    assert run([python, "manage.py", "shell", "-c", check], cwd=project, env=env).split()[-1] == "True"


class serving:
    """A server process for the block (its whole process group is stopped after)."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]):
        self.command, self.cwd, self.env = command, cwd, env

    def __enter__(self) -> subprocess.Popen:
        self.log = (self.cwd.parent / f"server-{os.getpid()}-{id(self)}.log").open("w+b")
        self.process = subprocess.Popen(
            self.command, cwd=self.cwd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self.process

    def __exit__(self, *exc_info) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)
        self.log.seek(0)
        if exc_info[0] is not None:
            print(self.log.read().decode(errors="replace")[-3000:])
        self.log.close()


def wait_until(url: str, ok: tuple[int, ...] = (200,)) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code in ok:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer in {STARTUP_TIMEOUT}s")
