"""Where each benchmarked request spends its work: ``python -m bench.profile [--count N] [--top K]``.

Runs in this process, through Django's test client with the benchmark's
settings, against the benchmark database (dropped and created, as ``bench/run``
does). For the gated read, inline ingest and queue-mode ingest, each beside its
bare baseline, and for a queue worker's claim-and-run of one delivery, it
prints per request: the statements by verb and table (commits included),
outbound connections, the Python function calls (a deterministic count, unlike
wall time on a shared machine) and, with ``--top``, the functions with the
most own time under cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import django

from .servers import reset_database

PROFILE_HEADER = """# Where each benchmarked request's work goes

Written by `python -m bench.profile --output bench/PROFILE.md` ({count} requests each, at commit `{commit}`): per
request, in-process through Django's test client on PostgreSQL, the statements by verb and table, commits (the
worker's second, its task's autocommitted result, is not counted here), outbound connections and Python function
calls. Counts do not depend on the machine's load; the wall times (under cProfile) do. The inline ingest's two
statements are the guarantees' own: the subscription and its organization read and locked in one (ordering guard),
then the subscription's update and the delivery's insert (exactly-once) in one `WITH`; the event leaves the seats
alone, so the seat cap is not read. See the README's Benchmarks section.
"""


def _shape(sql: str) -> str:
    table = re.search(r'(?:FROM|INTO|UPDATE)\s+"(\w+)"', sql)
    return sql.split()[0].upper() + (f" {table.group(1)}" if table else "")


def measure(name: str, send: Callable[[], object], count: int, top: int, *, sends: int | None = None) -> list[str]:
    """Run ``send`` ``sends`` times (``count`` unless given); the table rows for it, per one of ``count``."""
    from django.db import connection

    from . import probe

    shapes: Counter[str] = Counter()
    commits = 0
    commit = connection.connection.commit

    def counted_commit() -> None:
        nonlocal commits
        commits += 1
        commit()

    def wrapper(execute, sql, params, many, context):
        shapes[_shape(sql)] += 1
        return execute(sql, params, many, context)

    connection.connection.commit = counted_commit
    connects_before = probe.connects()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    with connection.execute_wrapper(wrapper):
        profiler.enable()
        for _ in range(count if sends is None else sends):
            send()
        profiler.disable()
    wall = time.perf_counter() - started
    connection.connection.commit = commit
    stats = pstats.Stats(profiler)
    calls = sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]
    rows = [
        f"| {name} | statements | {sum(shapes.values()) / count:.2f} |",
        *(f"| {name} | {shape} | {number / count:.2f} |" for shape, number in sorted(shapes.items())),
        f"| {name} | commits | {commits / count:.2f} |",
        f"| {name} | outbound connections | {(probe.connects() - connects_before) / count:.2f} |",
        f"| {name} | Python function calls | {calls / count:.0f} |",
        f"| {name} | wall ms (under cProfile, noisy) | {wall * 1000 / count:.3f} |",
    ]
    if top:
        entries = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
        for (path, line, function), (_, ncalls, own, _cumulative, _) in entries:
            where = f"{os.path.basename(path)}:{line} {function}"
            rows.append(f"| {name} | own time: {where} | {own * 1000 / count:.3f} ms, {ncalls / count:.1f} calls |")
    return rows


def main() -> None:
    from .__main__ import DEFAULT_DATABASE, WEBHOOK_PASSWORD, WEBHOOK_USER, environment, head_commit

    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE))
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--top", type=int, default=0, help="also list the K functions with the most own time")
    parser.add_argument("--only", default="", help="comma-separated: read, inline, queue, worker")
    parser.add_argument("--output", type=Path, help="also write the table there, as markdown (bench/PROFILE.md)")
    args = parser.parse_args()
    reset_database(args.database)
    os.environ.update(environment(args.database, "http://127.0.0.1:9", "bench", "http://127.0.0.1:9/api/v2"))
    django.setup()

    from django.core.management import call_command
    from django.db import connection
    from django.test import Client, override_settings

    from sandbox.fake_chargebee import FakeChargebee, serve
    from tests.scalekit_support import CLIENT_ID

    from . import web
    from .load import basic_auth
    from .scalekit import BenchScalekit

    call_command("migrate", verbosity=0)
    stub, chargebee = BenchScalekit(), serve(FakeChargebee())
    settings = override_settings(
        SCALEKIT_ENV_URL=stub.env_url, SCALEKIT_CLIENT_ID=CLIENT_ID, CHARGEBEE_API_BASE_URL=chargebee.url
    )
    settings.enable()
    only = set(filter(None, args.only.split(","))) or {"read", "inline", "queue", "worker"}
    warm, count = 10, args.count
    rows = ["| Request | Measure | Per request |", "|---|---|---:|"]
    client = Client(HTTP_HOST="127.0.0.1")
    hook = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=basic_auth(WEBHOOK_USER, WEBHOOK_PASSWORD)["Authorization"])
    connection.ensure_connection()
    try:
        if "read" in only:
            rows += _read(web, stub, client, warm, count, args.top)
        for mode in ("inline", "queue"):
            if mode in only or (mode == "queue" and "worker" in only):
                rows += _ingest(web, hook, mode, warm, count, args.top, worker="worker" in only and mode == "queue")
    finally:
        settings.disable()
        chargebee.stop()
        stub.stop()
    print("\n".join(rows))
    if args.output:
        args.output.write_text("\n".join([PROFILE_HEADER.format(count=count, commit=head_commit()), *rows, ""]))


def _read(web, stub, client, warm: int, count: int, top: int) -> list[str]:
    from orgbilling.models import Organization, Subscription
    from tests.chargebee_payloads import PLAN

    organization = Organization.objects.create(id="org_profile_read", chargebee_customer_id="cust_profile_read")
    Subscription.objects.create(organization=organization, status="active", plan_id=PLAN, seats=3)
    web._seed_rows()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {stub.token(oid=organization.id, exp=int(time.time()) + 3600)}"}

    def gated() -> None:
        assert client.get("/api/subscription", **headers).status_code == 200

    def bare() -> None:
        assert client.get("/bench/rows/row1").status_code == 200

    for send in (gated, bare):
        for _ in range(warm):
            send()
    return measure("gated read", gated, count, top) + measure("bare read", bare, count, top)


def _ingest(web, hook, mode: str, warm: int, count: int, top: int, *, worker: bool) -> list[str]:
    from django.test import override_settings

    prefix = f"pr{mode[0]}_"
    web._seed_subscriptions(prefix, 2 * (warm + count))
    bodies = iter([web._changed(prefix, number) for number in range(2 * (warm + count))])
    status = 202 if mode == "queue" else 200

    def webhook() -> None:
        assert hook.post("/api/webhooks/chargebee", next(bodies), content_type="application/json").status_code == status

    def insert() -> None:
        assert hook.post("/bench/rows", next(bodies), content_type="application/json").status_code == 200

    with override_settings(ORGBILLING_PROCESSING=mode):
        for send in (webhook, insert):
            for _ in range(warm):
                send()
        rows = measure(f"{mode} ingest", webhook, count, top) + measure(f"bare insert ({mode})", insert, count, top)
        if worker:
            rows += _worker(warm, count, top)
    return rows


def _worker(warm: int, count: int, top: int) -> list[str]:
    """``db_worker`` applying the deliveries ingested above: one a claim, then in batches (per delivery)."""
    from django.test import override_settings
    from django_tasks_db.management.commands.db_worker import Worker

    from orgbilling import conf

    worker = Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=1,
        worker_id="profile",
        excluded_queue_names=[],
    )

    def one_claim() -> None:
        worker._run_tasks = 0
        worker.run()

    one_by_one, batched = count // 2, count - count // 2
    with override_settings(ORGBILLING_QUEUE_LINGER=0):  # the work, not a wait after a short last batch
        with override_settings(ORGBILLING_QUEUE_BATCH=1):
            for _ in range(warm):
                one_claim()
            rows = measure("worker: one delivery a claim", one_claim, one_by_one, top)
        size = conf.get("ORGBILLING_QUEUE_BATCH")
        # Deliveries are claimed before the estimates' sweep they queue (its priority is lower): these claims take
        # them all.
        claims = -(-batched // size)
        return rows + measure(f"worker: per delivery, {size} a claim", one_claim, batched, top, sends=claims)


if __name__ == "__main__":
    main()
