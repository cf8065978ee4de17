"""Whether an inline renewal's BEGIN and COMMIT round trips are worth taking out: ``python -m bench.round_trips``.

An inline renewal is BEGIN, the locked read, the joined UPDATE and INSERT (one ``WITH``) and COMMIT: four round
trips. psycopg offers two ways to send BEGIN with the read and COMMIT with the write: multi-statement queries (the
simple protocol, which cannot use prepared statements) and its pipeline mode. This times the three shapes and a bare
one-row insert on scratch tables shaped like orgbilling's (a subscription of 25 text columns joined to its
organization, a delivery log unique per event), in the schema ``bench_round_trips`` of the benchmark database
(``BENCH_DATABASE_URL``), which it drops first and leaves. Prints the median milliseconds a transaction, per round.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import time
from collections.abc import Callable

import psycopg

from .__main__ import DEFAULT_DATABASE

SCHEMA = "bench_round_trips"
READ = (
    "SELECT s.*, o.* FROM subscription s JOIN organization o ON o.id = s.organization_id"
    " WHERE s.id = %s AND o.customer_id = %s FOR NO KEY UPDATE OF o, s"
)
WRITE = (
    "WITH held AS (UPDATE subscription SET resource_version = %s, c1 = %s, c2 = %s WHERE id = %s RETURNING 1)"
    " INSERT INTO delivery (vendor, event_id, body, status) VALUES (%s, %s, %s, %s)"
    " RETURNING id, (SELECT count(*) FROM held)"
)
BARE = "INSERT INTO delivery (vendor, event_id, body, status) VALUES (%s, %s, %s, %s)"


def _create(conn: psycopg.Connection, rows: int) -> None:
    columns = ", ".join(f"c{number} text" for number in range(25))
    conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    conn.execute(f"CREATE SCHEMA {SCHEMA}")
    conn.execute(f"SET search_path TO {SCHEMA}")
    conn.execute("CREATE TABLE organization (id text PRIMARY KEY, customer_id text UNIQUE)")
    conn.execute(
        f"CREATE TABLE subscription (id text PRIMARY KEY, organization_id text REFERENCES organization, {columns},"
        " resource_version bigint)"
    )
    conn.execute(
        "CREATE TABLE delivery (id bigserial PRIMARY KEY, vendor text, event_id text, body text, status text,"
        " UNIQUE (vendor, event_id))"
    )
    conn.execute("INSERT INTO organization SELECT 'o' || n, 'c' || n FROM generate_series(0, %s) n", (rows - 1,))
    conn.execute(
        "INSERT INTO subscription (id, organization_id, resource_version) SELECT 's' || n, 'o' || n, 1"
        " FROM generate_series(0, %s) n",
        (rows - 1,),
    )


def shapes(conn: psycopg.Connection, rows: int) -> dict[str, Callable[[], None]]:
    """Each shape as a function that runs one transaction (a renewal of a random subscription, or a bare insert)."""
    events = itertools.count()
    body = "x" * 400

    def values() -> tuple[tuple, tuple]:
        number, event = random.randrange(rows), next(events)
        read = (f"s{number}", f"c{number}")
        return read, (event + 2, "a", "b", f"s{number}", "chargebee", f"ev{event}", body, "processed")

    def four_round_trips() -> None:
        read, write = values()
        conn.autocommit = False
        cursor = psycopg.Cursor(conn)
        cursor.execute(READ, read)
        cursor.fetchone()
        cursor.execute(WRITE, write)
        cursor.fetchone()
        conn.commit()
        conn.autocommit = True

    def two_multi_statement_queries() -> None:
        read, write = values()
        cursor = psycopg.ClientCursor(conn)
        cursor.execute("BEGIN; " + READ, read)
        cursor.nextset()
        cursor.fetchone()
        cursor.execute(WRITE + "; COMMIT", write)
        cursor.fetchone()

    def pipeline_mode() -> None:
        read, write = values()
        conn.autocommit = False
        cursor = psycopg.Cursor(conn)
        with conn.pipeline():
            cursor.execute(READ, read)
            cursor.fetchone()
            cursor.execute(WRITE, write)
            conn.commit()
        cursor.fetchone()
        conn.autocommit = True

    def bare_insert() -> None:
        psycopg.Cursor(conn).execute(BARE, ("bare", f"ev{next(events)}", body, "stored"))

    return {
        "4 round trips, prepared (orgbilling's)": four_round_trips,
        "2 multi-statement queries, not prepared": two_multi_statement_queries,
        "pipeline mode, prepared": pipeline_mode,
        "bare insert, autocommit": bare_insert,
    }


def median_ms(run: Callable[[], None], count: int) -> float:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.round_trips", description=__doc__)
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE))
    parser.add_argument("--count", type=int, default=2000, help="transactions per shape and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    with psycopg.connect(args.database, autocommit=True, prepare_threshold=5) as conn:
        _create(conn, args.rows)
        try:
            runs = shapes(conn, args.rows)
            results: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(args.rounds):  # interleaved, so a change in the machine's speed reaches every shape
                for name, run in runs.items():
                    results[name].append(median_ms(run, args.count))
        finally:
            conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    print("| Shape | " + " | ".join(f"Round {number + 1}, ms" for number in range(args.rounds)) + " |")
    print("|---|" + "---:|" * args.rounds)
    for name, medians in results.items():
        print(f"| {name} | " + " | ".join(f"{value:.3f}" for value in medians) + " |")


if __name__ == "__main__":
    main()
