"""`.env.example` is the list of what a deployment can set: it names every variable the settings read."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_env_example_names_every_environment_variable_the_settings_read():
    settings = (ROOT / "billing_project" / "settings.py").read_text()
    read = set(re.findall(r'\benv(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]*)"', settings))
    assert read, "the pattern no longer finds the settings' env() calls"
    example = (ROOT / ".env.example").read_text()
    named = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, flags=re.M))
    assert read - named == set(), "add these to .env.example"
