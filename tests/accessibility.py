"""axe-core in the browser journey: no serious or critical violation on a page, at a desktop and a phone width.

axe-core comes inside axe-playwright-python (nothing is downloaded); it is injected into the page as it
stands, so a check sees what the person sees, messages and banners included.
"""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe

VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
BLOCKING = {"serious", "critical"}

_axe = Axe()


def violations(page) -> list[str]:
    """The serious and critical violations axe-core finds on ``page``, one line each (rule, impact, where)."""
    found = _axe.run(page).response["violations"]
    return [
        f"{rule['id']} ({rule['impact']}): {rule['help']} at {[node['target'] for node in rule['nodes'][:3]]}"
        for rule in found
        if rule["impact"] in BLOCKING
    ]


def assert_accessible(page, name: str) -> None:
    """Check ``page`` at each viewport, then give it back at the size it had."""
    before = page.viewport_size
    problems = {}
    try:
        for label, size in VIEWPORTS.items():
            page.set_viewport_size(size)
            found = violations(page)
            if found:
                problems[label] = found
    finally:
        if before:
            page.set_viewport_size(before)
    assert not problems, f"axe-core on {name} ({page.url}): {problems}"
