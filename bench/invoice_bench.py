"""Invoice benchmarks (issue 16), against the sandbox's fake Chargebee served over real HTTP.

    .venv/bin/python -m pytest -q -s -p no:randomly bench/invoice_bench.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orgbilling_bench .venv/bin/python -m pytest ... (PostgreSQL)

1. ``GET /billing`` for a billing manager with 1 and with 24 mirrored invoices: Chargebee calls (goal 0) and
   database queries (goal: the same number for both), and the median time of 20 requests.
2. ``orgbilling_sync --invoices`` over 10,000 invoices in the fake: list calls (goal 100, ``GET /invoices`` 100 a
   page), rows written, time.

Results go to ``bench/INVOICES.md``.
"""

from __future__ import annotations

import io
import platform
import statistics
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from orgbilling.invoices import apply_invoice
from orgbilling.models import Invoice, Organization
from tests.chargebee_payloads import CUSTOMER_ID, ORG_ID, START
from tests.conftest import _fresh_organization_memo, fake_chargebee, fresh_cache, scalekit, vendor_settings  # noqa: F401
from tests.invoice_payloads import invoice

pytestmark = pytest.mark.django_db

RESULTS = Path(__file__).with_name("INVOICES.md")
_rows: list[str] = []


@pytest.fixture
def acme() -> Organization:
    return Organization.objects.create(id=ORG_ID, display_name="Acme Corp", chargebee_customer_id=CUSTOMER_ID)


def _store(count: int) -> None:
    for number in range(Invoice.objects.count(), count):
        apply_invoice(invoice(f"inv_{number:05}", customer_id=CUSTOMER_ID, date=START + number * 86400))


def _page(manager: Client) -> tuple[int, float]:
    """Queries of one GET /billing (counted as executed: Django's query log is capped), and the median of 20."""
    executed = 0

    def count(execute, sql, params, many, context):  # noqa: ANN001, ANN202  (Django's execute_wrapper signature)
        nonlocal executed
        executed += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = manager.get("/billing")
    assert response.status_code == 200 and b"Download PDF" in response.content
    times = []
    for _ in range(20):
        started = time.perf_counter()
        manager.get("/billing")
        times.append(time.perf_counter() - started)
    return executed, statistics.median(times)


def test_billing_page_with_24_invoices(acme, scalekit, fake_chargebee):  # noqa: F811
    manager = scalekit.sign_in(Client(), oid=ORG_ID)
    _store(1)
    manager.get("/billing")  # warm the key cache and the organization memo
    fake_chargebee.reset_calls()
    one, one_time = _page(manager)
    _store(24)
    many, many_time = _page(manager)
    calls = len(fake_chargebee.calls())
    _rows.append(
        f"| 1. GET /billing, billing manager | 1 invoice: {one} queries, {one_time * 1000:.1f} ms; "
        f"24 invoices: {many} queries, {many_time * 1000:.1f} ms (median of 20) | Chargebee calls: {calls} "
        f"(goal 0) | queries fixed: {'yes' if one == many else 'no'} |"
    )
    assert calls == 0 and one == many


def test_invoice_sync_of_10000(acme, fake_chargebee):  # noqa: F811
    for number in range(10_000):
        body = invoice(f"inv_{number:05}", customer_id=CUSTOMER_ID, date=START + number * 60)
        fake_chargebee.store.put("invoice", fake_chargebee.store.touch(body))
    fake_chargebee.reset_calls()
    out = io.StringIO()
    started = time.perf_counter()
    call_command("orgbilling_sync", "--invoices", stdout=out, stderr=io.StringIO())
    elapsed = time.perf_counter() - started
    calls = fake_chargebee.calls()
    rows = Invoice.objects.count()
    _rows.append(
        f"| 2. orgbilling_sync --invoices, 10,000 invoices | {elapsed:.1f} s | list calls: {len(calls)} "
        f"(goal 100; paths {sorted({call.path for call in calls})}) | rows written: {rows:,} |"
    )
    assert len(calls) == 100 and {call.path for call in calls} == {"/invoices"} and rows == 10_000


def teardown_module() -> None:
    if len(_rows) < 2:
        return  # a partial run (one test selected, or one failed) leaves the recorded results alone
    database = connection.vendor
    if database == "postgresql":
        database += " " + ".".join(map(str, divmod(connection.pg_version, 10000)))
    RESULTS.write_text(
        "# Invoice benchmarks (bench/invoice_bench.py)\n\n"
        f"- {platform.machine()}, Python {platform.python_version()}, {database}; the fake Chargebee served by a "
        "threaded WSGI server in the same process\n\n"
        "| Benchmark | Time | Measure | Result |\n|---|---|---|---|\n" + "\n".join(_rows) + "\n\n"
        "Run on a 2-core machine shared with other busy sessions: times are loose, the counts are the measure.\n"
    )
