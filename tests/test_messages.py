"""Every page and error message orgbilling shows is translatable, and ``makemessages`` collects it.

Two halves: the sources mark everything a user reads (text in the templates,
the messages of the refusals and JSON errors), and ``makemessages`` run over
the package (needs GNU gettext) finds every marked string.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.template.base import Lexer, TokenType

PACKAGE = Path(__file__).resolve().parents[1] / "orgbilling"
TEMPLATES = sorted((PACKAGE / "templates").rglob("*.html"))
MODULES = sorted(PACKAGE.glob("*.py"))
# Whatever these are built with is read by the user (a page, a message, a JSON "error").
USER_FACING = {"BillingProblem", "NotSignedIn", "BillingDenied", "NotFound", "Throttled", "InvalidPlan"}
GETTEXT = {"_", "gettext", "gettext_lazy", "ngettext", "ngettext_lazy", "pgettext", "pgettext_lazy"}
BLOCK_TRANSLATE = re.compile(r"^(blocktranslate|blocktrans)\b")


def visible_text(template: Path) -> tuple[str, list[str]]:
    """The template with tags, variables and translated text removed, and its blocktranslate bodies."""
    kept, bodies, body = [], [], None
    for token in Lexer(template.read_text()).tokenize():
        content = token.contents.strip()
        if token.token_type == TokenType.BLOCK and BLOCK_TRANSLATE.match(content):
            body = []
        elif token.token_type == TokenType.BLOCK and content.startswith(("endblocktranslate", "endblocktrans")):
            bodies.append("".join(body))
            body = None
        elif body is not None:
            body.append(token.contents if token.token_type == TokenType.TEXT else f"%({content})s")
        elif token.token_type == TokenType.TEXT:
            kept.append(token.contents)
        elif token.token_type == TokenType.VAR:
            kept.append("\x00")
    return "".join(kept), bodies


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_templates_mark_every_text_for_translation(template):
    text, _ = visible_text(template)
    outside_tags = re.sub(r"<[^>]*>", " ", text)
    assert not re.findall(r"[A-Za-z]{2,}", outside_tags), f"untranslated text in {template.name}"
    attributes = re.findall(r'\b(?:placeholder|title|aria-label|alt)="([^"]*)"', text)
    assert not [value for value in attributes if re.search(r"[A-Za-z]{2,}", value)]


def _literal(node: ast.AST) -> bool:
    """A message written in place: a string or f-string, not a gettext call or a variable."""
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _name(node: ast.AST) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def untranslated_messages(module: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(module.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        messages = []
        if name in USER_FACING and node.args:
            messages = [node.args[0]]
        elif name in ("success", "error", "info", "warning") and _name(getattr(node.func, "value", None)) == "messages":
            messages = node.args[1:2]
        elif name == "JsonResponse" and node.args and isinstance(node.args[0], ast.Dict):
            messages = [v for k, v in zip(node.args[0].keys, node.args[0].values, strict=True) if _key(k) == "error"]
        found += [f"{module.name}:{message.lineno}" for message in messages if _literal(message)]
    return found


def _key(node: ast.AST | None) -> str:
    return node.value if isinstance(node, ast.Constant) else ""


def test_refusals_and_json_errors_are_marked_for_translation():
    assert [where for module in MODULES for where in untranslated_messages(module)] == []


def marked_in_python() -> set[str]:
    marked = set()
    for module in MODULES:
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Call) and _name(node.func) in GETTEXT and node.args and _literal(node.args[0]):
                marked.add(node.args[0].value)
    return marked


def marked_in_templates() -> set[str]:
    marked = set()
    for template in TEMPLATES:
        source = template.read_text()
        marked |= set(re.findall(r'{%\s*(?:translate|trans)\s+"([^"]+)"', source))
        marked |= set(re.findall(r'_\("([^"]+)"\)', source))
        marked |= {re.sub(r"\s+", " ", body.strip()) for body in visible_text(template)[1]}
    return marked


def msgids(po: Path) -> set[str]:
    ids, current = set(), None
    for line in po.read_text().splitlines():
        if line.startswith("msgid "):
            current = [ast.literal_eval(line[6:])]
        elif line.startswith('"') and current is not None:
            current.append(ast.literal_eval(line))
        else:
            if current is not None:
                ids.add("".join(current))
            current = None
    return {re.sub(r"\s+", " ", msgid.strip()) for msgid in ids if msgid}


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="needs GNU gettext (apt-get install gettext)")
def test_makemessages_collects_every_page_and_error_message(tmp_path, monkeypatch):
    copy = tmp_path / "orgbilling"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "locale"))
    (copy / "locale").mkdir()
    monkeypatch.chdir(copy)
    call_command("makemessages", locale=["xx"], verbosity=0)
    collected = msgids(copy / "locale" / "xx" / "LC_MESSAGES" / "django.po")
    expected = marked_in_python() | marked_in_templates()
    assert len(expected) > 40
    assert expected - collected == set()
