"""Every call orgbilling makes to Scalekit's management API goes through this module.

Scalekit's SDK makes these calls over gRPC with mandatory TLS to the host of
``SCALEKIT_ENV_URL``, which neither a path-prefixed sandbox nor a proxy can
serve; the same operations are published as REST under the environment URL,
so one code path serves production and the sandbox (see VENDOR_NOTES).

Like the Chargebee gateway: a client-credentials token cached until shortly
before it expires (and fetched again once on a 401), timeouts, bounded retries
on timeouts, 5xx and 429 (at least ``Retry-After`` apart), and one error type,
``ScalekitError``. Results are the API's JSON as plain dicts. Later seat and
directory work adds its calls here as small methods over ``request`` and
``iter_pages``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx

from . import conf

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = {429, 500, 502, 503, 504}
ORGANIZATIONS_PAGE_SIZE = 100  # Scalekit's largest page of organizations (and of members)
DIRECTORY_USERS_PAGE_SIZE = 30  # Scalekit's largest page of directory users
TOKEN_MARGIN = 60  # seconds before expiry a cached token is no longer used
MAX_RETRY_DELAY = 30.0


class ScalekitError(Exception):
    """A Scalekit management call failed; ``http_status`` is None when no answer came."""

    def __init__(self, message: str, *, http_status: int | None = None, code: str = "", retry_after: float = 0.0):
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.code = code
        self.retry_after = retry_after  # seconds Scalekit asked to wait (429)

    @property
    def retryable(self) -> bool:
        return self.http_status is None or self.http_status in RETRYABLE_STATUSES

    @property
    def not_found(self) -> bool:
        return self.http_status == 404

    def __str__(self) -> str:
        status = f" (HTTP {self.http_status})" if self.http_status else ""
        return f"Scalekit: {self.message}{status}"


class _Token:
    """The client-credentials token, shared by every thread using one client."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value = ""
        self.expires_at = 0.0


class ScalekitManagement:
    """A configured client for ``{env}/api/v1``. Build one with ``get_client()``."""

    def __init__(
        self,
        *,
        env_url: str,
        client_id: str,
        client_secret: str,
        connect_timeout: float = 5,
        read_timeout: float = 20,
        max_retries: int = 2,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not (env_url and client_id and client_secret):
            raise ScalekitError(
                "set SCALEKIT_ENV_URL, SCALEKIT_CLIENT_ID and SCALEKIT_CLIENT_SECRET", code="not_configured"
            )
        self.env_url = env_url.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.max_retries = max_retries
        self.backoff = backoff
        self.sleep = sleep
        self.clock = clock
        self._token = _Token()
        self._http = httpx.Client(timeout=httpx.Timeout(read_timeout, connect=connect_timeout))

    # -- the machinery ---------------------------------------------------------
    def request(self, method: str, path: str, *, params: dict | None = None, json: Any = None) -> dict:
        """Call ``{env}{path}`` with the management token; retry what may heal; return the JSON body."""
        attempt, refreshed = 0, False
        while True:
            try:
                return self._authorized(method, path, params, json)
            except _Unauthorized as exc:
                if refreshed:
                    logger.warning("scalekit %s %s: a fresh management token was refused too", method, path)
                    raise ScalekitError("the management token was refused", http_status=401) from exc
                self._forget_token()  # revoked or rotated early: fetch a new one, once
                refreshed = True
            except ScalekitError as error:
                if not error.retryable or attempt >= self.max_retries:
                    logger.warning("scalekit %s %s failed after %d tries: %s", method, path, attempt + 1, error)
                    raise
                delay = max(self.backoff * (2**attempt), error.retry_after)
                attempt += 1
                logger.info("scalekit %s %s: %s; retry %d in %.1fs", method, path, error, attempt, delay)
                self.sleep(min(delay, MAX_RETRY_DELAY))

    def iter_pages(self, path: str, key: str, *, page_size: int, params: dict | None = None) -> Iterator[list[dict]]:
        """Each page of a Scalekit list (``key`` names its items); ends at an empty ``next_page_token``."""
        page_token = ""
        while True:
            query = {**(params or {}), "page_size": page_size}
            if page_token:
                query["page_token"] = page_token
            body = self.request("GET", path, params=query)
            yield list(body.get(key) or [])
            page_token = body.get("next_page_token") or ""
            if not page_token:
                return

    def _authorized(self, method: str, path: str, params: dict | None, json: Any) -> dict:
        headers = {"Authorization": f"Bearer {self._access_token()}", "Accept": "application/json"}
        response = self._send(method, f"{self.env_url}{path}", params=params, json=json, headers=headers)
        if response.status_code == 401:
            raise _Unauthorized()
        return _body(response)

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise ScalekitError("Scalekit did not answer in time", code="timeout") from exc
        except httpx.TransportError as exc:
            raise ScalekitError(f"Scalekit could not be reached ({type(exc).__name__})", code="network_error") from exc

    def _access_token(self) -> str:
        token = self._token
        with token.lock:
            if token.value and self.clock() < token.expires_at - TOKEN_MARGIN:
                return token.value
            data = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self._secret}
            response = self._send("POST", f"{self.env_url}/oauth/token", data=data)
            if response.status_code in (400, 401):
                raise ScalekitError("Scalekit refused the client credentials", http_status=401, code="invalid_client")
            body = _body(response)
            if not isinstance(body.get("access_token"), str):
                raise ScalekitError("the token answer has no access_token", http_status=response.status_code)
            token.value = body["access_token"]
            token.expires_at = self.clock() + float(body.get("expires_in") or 0)
            return token.value

    def _forget_token(self) -> None:
        with self._token.lock:
            self._token.value = ""

    # -- organizations ---------------------------------------------------------
    def iter_organizations(self) -> Iterator[list[dict]]:
        """Every organization, one list of up to 100 per call."""
        return self.iter_pages("/api/v1/organizations", "organizations", page_size=ORGANIZATIONS_PAGE_SIZE)

    def get_organization(self, organization_id: str) -> dict:
        """One organization; a ``ScalekitError`` with ``not_found`` when Scalekit has none by that id."""
        body = self.request("GET", f"/api/v1/organizations/{quote(organization_id, safe='')}")
        organization = body.get("organization")
        if not isinstance(organization, dict):
            raise ScalekitError("the answer has no organization", http_status=200, code="malformed")
        return organization

    # -- seats ------------------------------------------------------------------
    def set_max_allowed_users(self, organization_id: str, limit: int) -> dict:
        """Set the organization's member cap (0: no limit); returns Scalekit's ``settings``."""
        path = f"/api/v1/organizations/{quote(organization_id, safe='')}/settings/usermanagement"
        body = self.request("PATCH", path, json={"settings": {"max_allowed_users": limit}})
        return body.get("settings") if isinstance(body.get("settings"), dict) else {}

    def iter_organization_users(self, organization_id: str) -> Iterator[list[dict]]:
        """The organization's users (each with all their ``memberships``), 100 a page."""
        path = f"/api/v1/organizations/{quote(organization_id, safe='')}/users"
        return self.iter_pages(path, "users", page_size=ORGANIZATIONS_PAGE_SIZE)

    # -- directory (SCIM) users ---------------------------------------------------------
    def list_directories(self, organization_id: str) -> list[dict]:
        body = self.request("GET", f"/api/v1/organizations/{quote(organization_id, safe='')}/directories")
        return [entry for entry in body.get("directories") or [] if isinstance(entry, dict)]

    def iter_directory_users(
        self, organization_id: str, directory_id: str, *, updated_after: str | None = None
    ) -> Iterator[list[dict]]:
        """The directory's users, 30 a page (Scalekit's largest), only those updated after a time if given."""
        path = (
            f"/api/v1/organizations/{quote(organization_id, safe='')}/directories/{quote(directory_id, safe='')}/users"
        )
        params = {"updated_after": updated_after} if updated_after else None
        return self.iter_pages(path, "users", page_size=DIRECTORY_USERS_PAGE_SIZE, params=params)


class _Unauthorized(Exception):
    """A 401 on an API call: the token is no longer accepted."""


def _body(response: httpx.Response) -> dict:
    """The JSON object of a 2xx answer; a ``ScalekitError`` (with ``retry_after`` on a 429) otherwise."""
    if response.status_code >= 400:
        status = response.status_code
        raise ScalekitError(_error_message(response), http_status=status, retry_after=_retry_after(response))
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ScalekitError("the answer is not a JSON object", http_status=response.status_code, code="malformed")
    return body


def _error_message(response: httpx.Response) -> str:
    """Scalekit's error text (``message`` or OAuth's ``error_description``), short, never the request."""
    try:
        body = response.json()
    except ValueError:
        return f"Scalekit answered {response.status_code}"
    if isinstance(body, dict):
        text = body.get("message") or body.get("error_description") or body.get("error")
        if isinstance(text, str) and text:
            return text[:200]
    return f"Scalekit answered {response.status_code}"


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After") or 0))
    except ValueError:
        return 0.0


CREDENTIALS = ("SCALEKIT_ENV_URL", "SCALEKIT_CLIENT_ID", "SCALEKIT_CLIENT_SECRET")


def configured() -> bool:
    """Whether the management API can be called at all (its credentials are set)."""
    return all(conf.get(name) for name in CREDENTIALS)


_clients: dict[tuple, ScalekitManagement] = {}
_clients_lock = threading.Lock()


def get_client() -> ScalekitManagement:
    """The client for the current settings, one per process so its token is reused between calls."""
    key = tuple(
        conf.get(name)
        for name in (
            "SCALEKIT_ENV_URL",
            "SCALEKIT_CLIENT_ID",
            "SCALEKIT_CLIENT_SECRET",
            "SCALEKIT_CONNECT_TIMEOUT",
            "SCALEKIT_READ_TIMEOUT",
            "SCALEKIT_MAX_RETRIES",
            "SCALEKIT_RETRY_BACKOFF",
        )
    )
    with _clients_lock:
        if key not in _clients:
            env_url, client_id, secret, connect, read, retries, backoff = key
            _clients.clear()  # settings changed: the old client's token is for other credentials
            _clients[key] = ScalekitManagement(
                env_url=env_url,
                client_id=client_id,
                client_secret=secret,
                connect_timeout=connect,
                read_timeout=read,
                max_retries=retries,
                backoff=backoff,
            )
        return _clients[key]
