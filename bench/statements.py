"""Where an inline webhook's time goes, statement by statement: ``python -m bench.statements [--count N]``.

Runs in this process, through Django's test client with the benchmark's
settings, against the benchmark database (dropped and created, as ``bench/run``
does): N ``subscription_changed`` deliveries (processed inline) and N bare
inserts of the same bodies. Per request: the time inside each SQL statement
(by its verb and table; PostgreSQL's implicit BEGIN travels with the first),
the commit, and the rest, which is Python (authentication, parsing, the ORM
building each query and reading its rows, the response). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable

import django

from .servers import reset_database


def _timed(sink: dict[str, float]) -> Callable:
    def wrapper(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            table = re.search(r'(?:FROM|INTO|UPDATE)\s+"(\w+)"', sql)
            shape = sql.split()[0].upper() + (f" {table.group(1)}" if table else "")
            sink[shape] += time.perf_counter() - started

    return wrapper


def _profile(send: Callable[[], object], count: int) -> tuple[float, dict[str, float]]:
    """Wall seconds per request, and seconds per request in each statement shape and in commits."""
    from django.db import connection

    spent: dict[str, float] = defaultdict(float)
    commit = connection.connection.commit

    def timed_commit() -> None:
        started = time.perf_counter()
        commit()
        spent["COMMIT"] += time.perf_counter() - started

    connection.connection.commit = timed_commit
    started = time.perf_counter()
    with connection.execute_wrapper(_timed(spent)):
        for _ in range(count):
            send()
    wall = time.perf_counter() - started
    connection.connection.commit = commit
    return wall / count, {shape: seconds / count for shape, seconds in spent.items()}


def main() -> None:
    from .__main__ import DEFAULT_DATABASE, WEBHOOK_PASSWORD, WEBHOOK_USER, environment

    parser = argparse.ArgumentParser(prog="python -m bench.statements", description=__doc__)
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE))
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    reset_database(args.database)
    os.environ.update(environment(args.database, "http://127.0.0.1:9", "bench", "http://127.0.0.1:9/api/v2"))
    os.environ["ORGBILLING_PROCESSING"] = "inline"
    django.setup()

    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from . import web
    from .load import basic_auth

    call_command("migrate", verbosity=0)
    web._seed_subscriptions("st_", 2 * args.count)
    bodies = iter([web._changed("st_", number) for number in range(2 * args.count)])
    client = Client(
        HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=basic_auth(WEBHOOK_USER, WEBHOOK_PASSWORD)["Authorization"]
    )
    connection.ensure_connection()

    def webhook() -> None:
        client.post("/api/webhooks/chargebee", next(bodies), content_type="application/json")

    def insert() -> None:
        client.post("/bench/rows", next(bodies), content_type="application/json")

    for send in (webhook, insert):  # warm-up: imports, connection, caches
        for _ in range(10):
            send()
    rows = ["| Request | Statement | ms per request |", "|---|---|---:|"]
    for name, send in (("inline webhook", webhook), ("bare insert", insert)):
        wall, spent = _profile(send, args.count - 10)
        for shape, seconds in spent.items():
            rows.append(f"| {name} | {shape} | {seconds * 1000:.3f} |")
        rows.append(f"| {name} | everything else (Python) | {(wall - sum(spent.values())) * 1000:.3f} |")
        rows.append(f"| {name} | **total** | **{wall * 1000:.3f}** |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
