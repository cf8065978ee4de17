"""``bench/run``: set up PostgreSQL, the vendor stand-ins and gunicorn, run the four benchmarks, write the table.

Order of the run: reconciliation (in this process, on a clean database),
then the gated read and inline ingest against one gunicorn, then the renewal
burst against a queue-mode gunicorn with task workers.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

import django

from .servers import ROOT, Processes, reset_database

DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/orgbilling_bench"
WEBHOOK_USER, WEBHOOK_PASSWORD = "bench-hook", secrets.token_urlsafe(16)
WORKERS = 2

METHOD = """
## How it was measured

`bench/run` ([bench/](.)) creates a fresh PostgreSQL database, serves the project with gunicorn (sync workers) on
127.0.0.1 with `DEBUG` off and persistent database connections that may prepare statements
(`DATABASE_URL=...?conn_max_age=600&prepare_threshold=5`, as the README's Production section advises), and sends
requests from Python threads over `http.client`, one connection per request. Baselines are bare Django views in the same
server behind the same middleware (`bench/views.py`): one row by unique key, one insert of the request body.

1. **Gated read**: `GET /api/subscription` with an RS256 Bearer token (validated against a JWKS served on 127.0.0.1)
   vs the indexed lookup; one request at a time, both sides interleaved in five chunks; median latency. Queries and
   outbound connections per request are counted inside the server (`bench/probe.py`), after a warm-up that lets each
   gunicorn worker fetch the JWKS once.
2. **Webhook ingest**: one `subscription_changed` per subscription (Basic Auth), processed inline, vs inserting the
   same bodies; measured like 1, after 20 of each not counted. Each organization has seen its customer and
   subscription before and has its seat cap confirmed (as on most events); the event moves the term, not the seats,
   so it needs no vendor call (outbound connections are counted in the server).
   `CHARGEBEE_API_BASE_URL` points at the fake Chargebee, which counts every call. The queue-mode line is the same
   measurement on a server in queue mode: answered once recorded and enqueued (the workers of 3 apply them before the
   burst starts).
3. **Renewal burst**: `subscription_renewed` deliveries of mirrored subscriptions in time order, shuffled within
   windows of 200, 5% sent twice, from 16 threads, to a server in queue mode with two `manage.py db_worker`
   processes. Accept = every delivery answered; drain = every delivery processed or ignored and no task left.
   Baseline: the same requests to the bare insert view. Lost = sent but not processed/ignored; applied twice = tried
   more than once. Goal: at least 282 applied a second (twice the best rate recorded before issue 18); the drain
   includes every task the deliveries queue (a renewal estimate's, since issue 15). Scalekit's seat-cap calls are
   answered by `bench/scalekit.py`. "CPU per delivery while accepting" is the CPU time each kind of process on the
   machine spent while the deliveries were sent (the workers applying them meanwhile), from `/proc` (`bench/cpu.py`),
   divided by the requests sent; the baseline's is the bare inserts' with the workers idle.
4. **Reconciliation**: `manage.py orgbilling_sync` against the fake Chargebee; baseline: listing the same
   subscriptions through the same gateway without applying them.

`bench/run --repeat N` runs the whole suite N times, each on a freshly created database and freshly started servers;
the first table shows each goal's figure in every run, then each run's own table follows.
"""


def environment(database_url: str, scalekit_url: str, client_id: str, chargebee_url: str) -> dict[str, str]:
    """What the servers, the workers and this process run with: production settings on loopback."""
    return {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": f"{database_url}?conn_max_age=600&conn_health_checks=true&prepare_threshold=5",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SANDBOX": "false",
        "SCALEKIT_ENV_URL": scalekit_url,
        "SCALEKIT_CLIENT_ID": client_id,
        "SCALEKIT_CLIENT_SECRET": "bench-secret",
        "SCALEKIT_WEBHOOK_SECRET": "whsec_" + "YmVuY2hzZWNyZXQ=",
        "SCALEKIT_COOKIE_ENCRYPTION_SECRET": secrets.token_urlsafe(32),
        "CHARGEBEE_SITE": "bench",
        "CHARGEBEE_API_KEY": "bench_key",
        "CHARGEBEE_API_BASE_URL": chargebee_url,
        "CHARGEBEE_PLAN_ITEM_PRICE_ID": "team-plan-USD-monthly",
        "CHARGEBEE_WEBHOOK_USERNAME": WEBHOOK_USER,
        "CHARGEBEE_WEBHOOK_PASSWORD": WEBHOOK_PASSWORD,
    }


def head_commit() -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return commit.stdout.strip()


def context(scale: float, started: float, repeat: int, commit: str) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    return [
        f"{repeat} run{'s' if repeat > 1 else ''} from {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))} "
        f"to {time.strftime('%H:%M UTC', time.gmtime())} at commit `{commit}`"
        + (f", scale {scale}" if scale != 1 else ""),
        f"{os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}, PostgreSQL {postgres}, "
        f"gunicorn with {WORKERS} sync workers; load generator and database on the same machine",
    ]


def run_suite(args: argparse.Namespace, counts: dict[str, int]) -> list:
    """One run of the four benchmarks on a fresh database; returns the table's lines."""
    from django.core.management import call_command
    from django.db import connections
    from django.test import override_settings

    from sandbox.fake_chargebee import FakeChargebee, serve
    from tests.scalekit_support import CLIENT_ID

    from . import burst, reconcile, web
    from .load import basic_auth
    from .scalekit import BenchScalekit

    connections.close_all()  # the database is dropped with FORCE: reconnect to the new one
    reset_database(args.database)
    call_command("migrate", verbosity=0)
    stub, fake = BenchScalekit(), FakeChargebee()
    chargebee = serve(fake)
    env = {**os.environ, **environment(args.database, stub.env_url, CLIENT_ID, chargebee.url)}
    os.environ["DJANGO_SETTINGS_MODULE"] = env["DJANGO_SETTINGS_MODULE"]
    announced = override_settings(CHARGEBEE_API_BASE_URL=chargebee.url)  # announced, so orgbilling.conf sees it
    announced.enable()
    auth = basic_auth(WEBHOOK_USER, WEBHOOK_PASSWORD)
    logs = Path(tempfile.mkdtemp(prefix="orgbilling-bench-"))
    print(f"bench: logs in {logs}", flush=True)
    try:
        print("bench: 4. reconciliation", flush=True)
        reconciliation = reconcile.reconciliation(fake, counts["reconcile"])
        with Processes({**env, "ORGBILLING_PROCESSING": "inline"}, logs) as processes:
            port = processes.gunicorn("inline", WORKERS)
            print("bench: 1. gated read", flush=True)
            lines = web.gated_read(port, stub, counts["read"], WORKERS)
            print("bench: 2. webhook ingest", flush=True)
            lines += web.webhook_ingest(port, fake, counts["ingest"], auth, queued=False)
        with Processes({**env, "ORGBILLING_PROCESSING": "queue"}, logs) as processes:
            port = processes.gunicorn("queue", WORKERS)
            print("bench: 2. webhook ingest, queue mode", flush=True)
            lines += web.webhook_ingest(port, fake, counts["ingest"], auth, queued=True)
            processes.db_workers(WORKERS)
            burst.wait_for_drain()  # the ingested deliveries, before the burst is timed
            print("bench: 3. renewal burst", flush=True)
            lines += burst.renewal_burst(port, counts["burst"], auth, WORKERS, fake)
        return lines + reconciliation
    finally:
        announced.disable()
        chargebee.stop()
        stub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count (0.1 for a quick look)")
    parser.add_argument("--repeat", type=int, default=1, help="run the suite this many times, each on a fresh database")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    counts = {name: max(10, int(n * args.scale)) for name, n in {"read": 2000, "ingest": 1000, "burst": 10_000}.items()}
    counts["reconcile"] = max(10, int(10_000 * args.scale))

    # Placeholders until the stand-ins are up: they need Django's settings to import.
    os.environ.update(environment(args.database, "http://127.0.0.1:9", "", "http://127.0.0.1:9/api/v2"))
    django.setup()

    from . import report

    started, commit, runs = time.time(), head_commit(), []
    for number in range(1, args.repeat + 1):
        print(f"bench: run {number} of {args.repeat}", flush=True)
        runs.append(run_suite(args, counts))
        print(report.table(runs[-1]), flush=True)
    report.write(args.output, runs, context(args.scale, started, args.repeat, commit), METHOD)
    print(f"bench: written to {args.output}")


if __name__ == "__main__":
    main()
