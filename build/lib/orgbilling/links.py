"""Absolute URLs of orgbilling's routes, for the places that leave this site (Chargebee's redirects).

``reverse()`` already starts with ``FORCE_SCRIPT_NAME`` and wherever the
project's URLconf mounts orgbilling, so the prefix appears once whether
``APP_URL`` names just the host or also the path the site is served under.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from django.urls import reverse

from . import conf


def absolute_url(viewname: str, **query: str) -> str:
    """``APP_URL`` joined with ``reverse(viewname)``, plus ``query``; a path both start with is kept once."""
    base = conf.get("APP_URL").rstrip("/")
    path = reverse(viewname)
    base_path = urlsplit(base).path
    if base_path and (path == base_path or path.startswith(f"{base_path}/")):
        base = base[: -len(base_path)]
    return f"{base}{path}?{urlencode(query)}" if query else f"{base}{path}"
