"""Settings that point the project at the built-in sandbox vendors.

Called from billing_project/settings.py. It is kept out of the settings file so
the only sandbox knowledge there is one `if`: which vendor settings the
sandbox needs, and the secrets behind them, live here. Secrets are generated
once and kept in a gitignored folder (``var/sandbox/`` by default), so a
restart keeps sessions, tokens and webhook signatures valid, and two
processes (the demo's setup command and the server) agree on them.
"""

from __future__ import annotations

import json
import os
import secrets
from base64 import b64encode
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.demo_prices import DEMO_PLANS

CREDENTIALS_FILE = "credentials.json"
SIGNING_KEY_FILE = "scalekit_signing_key.pem"
PLAN_ITEM_PRICE_ID = "team-USD-monthly"
# Either variable means real vendor credentials are configured, so the sandbox stays off by default.
VENDOR_CREDENTIAL_VARIABLES = ("SCALEKIT_CLIENT_ID", "CHARGEBEE_API_KEY")


def default_enabled(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """On when no vendor credentials are configured: a fresh clone runs end to end."""
    return not any(environ.get(name) for name in VENDOR_CREDENTIAL_VARIABLES)


def vendor_settings(app_url: str, sandbox_dir: Path, billing_url: str = "") -> dict[str, Any]:
    """Every vendor setting, aimed at the sandbox served by this same server under /sandbox/.

    ``app_url`` is where the site is served (with FORCE_SCRIPT_NAME's path, if any), ``billing_url``
    where the project mounts the billing app's routes (``app_url`` by default): the sign-in callback
    and the webhook endpoints the fake vendors are registered with.
    """
    app_url = app_url.rstrip("/")
    billing_url = (billing_url or app_url).rstrip("/")
    credentials = load_credentials(sandbox_dir)
    return {
        "SANDBOX_DIR": sandbox_dir,
        "SCALEKIT_ENV_URL": f"{app_url}/sandbox/scalekit",
        "SCALEKIT_CLIENT_ID": credentials["scalekit_client_id"],
        "SCALEKIT_CLIENT_SECRET": credentials["scalekit_client_secret"],
        "SCALEKIT_WEBHOOK_SECRET": credentials["scalekit_webhook_secret"],
        "SANDBOX_SCALEKIT_ENVIRONMENT_ID": credentials["scalekit_environment_id"],
        "SCALEKIT_COOKIE_ENCRYPTION_SECRET": credentials["scalekit_cookie_secret"],
        "SCALEKIT_REDIRECT_URI": f"{billing_url}/auth/callback",
        "SCALEKIT_POST_LOGOUT_REDIRECT_URI": f"{billing_url}/billing",
        "CHARGEBEE_SITE": "",  # no chargebee.com site: admin links to it would lead nowhere
        "CHARGEBEE_API_KEY": credentials["chargebee_api_key"],
        "CHARGEBEE_API_BASE_URL": f"{app_url}/sandbox/chargebee/api/v2",
        "CHARGEBEE_PLAN_ITEM_PRICE_ID": PLAN_ITEM_PRICE_ID,
        "CHARGEBEE_GATEWAY_ACCOUNT_ID": "",
        "CHARGEBEE_WEBHOOK_USERNAME": credentials["chargebee_webhook_username"],
        "CHARGEBEE_WEBHOOK_PASSWORD": credentials["chargebee_webhook_password"],
        # The endpoints registered with the fake vendors, as they would be in each vendor's dashboard.
        "SANDBOX_WEBHOOK_URLS": {
            "scalekit": f"{billing_url}/api/webhooks/scalekit",
            "chargebee": f"{billing_url}/api/webhooks/chargebee",
        },
        "SANDBOX_BILLING_URL": f"{billing_url}/billing",
        # The demo's catalog (sandbox/demo_prices.py): prices and trials are the fake Chargebee's item prices.
        "ORGBILLING_PLANS": DEMO_PLANS,
        # The sandbox's pages and fake APIs are vendors, not billing pages: no sign-in context there.
        "ORGBILLING_AUTH_EXEMPT_PATHS": ["/sandbox/"],
    }


def load_credentials(sandbox_dir: Path) -> dict[str, str]:
    """The sandbox's secrets, generated on first use; also makes the token signing key."""
    sandbox_dir.mkdir(parents=True, exist_ok=True)
    _create_once(sandbox_dir / SIGNING_KEY_FILE, _new_signing_key)
    return json.loads(_create_once(sandbox_dir / CREDENTIALS_FILE, _new_credentials))


def _new_credentials() -> bytes:
    digits = "".join(secrets.choice("0123456789") for _ in range(17))
    values = {
        "scalekit_client_id": f"skc_{digits}",
        "scalekit_client_secret": f"test_{secrets.token_urlsafe(32)}",
        "scalekit_webhook_secret": "whsec_" + b64encode(secrets.token_bytes(32)).decode(),
        "scalekit_cookie_secret": secrets.token_urlsafe(32),
        "scalekit_environment_id": f"env_{digits}",
        "chargebee_api_key": f"test_{secrets.token_urlsafe(24)}",
        "chargebee_webhook_username": "sandbox-chargebee",
        "chargebee_webhook_password": secrets.token_urlsafe(24),
        "django_admin_password": secrets.token_urlsafe(12),
    }
    return json.dumps(values, indent=2).encode()


def _new_signing_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _create_once(path: Path, make: Callable[[], bytes]) -> bytes:
    """Read ``path``, creating it with ``make()`` if absent; a racing process never sees a half file."""
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        temporary.write_bytes(make())
        temporary.chmod(0o600)
        try:
            os.link(temporary, path)  # fails if another process got there first: theirs wins
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_bytes()
