"""The processes a benchmark runs against: a fresh PostgreSQL database, gunicorn, task workers.

All on 127.0.0.1. Every wait is bounded (``STARTUP_SECONDS``) and every
process started here is stopped by the ``Processes`` that started it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 60
STOP_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def reset_database(url: str) -> None:
    """Drop and create the benchmark's database; refuses a name without "bench" in it.

    Unless ``BENCH_DROP_DATABASE`` names it: a database of its own given to the benchmark under another name.
    """
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if "bench" not in name and os.environ.get("BENCH_DROP_DATABASE") != name:
        raise SystemExit(
            f"refusing to drop database {name!r}: a benchmark database name must contain 'bench' "
            "(or BENCH_DROP_DATABASE name it)"
        )
    params = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password or ""),
        "dbname": "postgres",
    }
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


class Processes:
    """Child processes of one benchmark phase; ``with Processes(env, logs) as procs:`` stops them all."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env, self.log_dir = env, log_dir
        self.children: list[subprocess.Popen] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for child in self.children:
            child.terminate()
        for child in self.children:
            try:
                child.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def _start(self, command: list[str], log_name: str) -> subprocess.Popen:
        log = (self.log_dir / log_name).open("w")
        child = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.children.append(child)
        return child

    def gunicorn(self, name: str, workers: int = 2) -> int:
        """Serve the project (settings from ``env``) with gunicorn's sync workers; returns the port."""
        port = free_port()
        command = [
            str(Path(sys.executable).with_name("gunicorn")),
            "billing_project.wsgi:application",
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            "--worker-class=sync",
        ]
        child = self._start(command, f"gunicorn-{name}.log")
        wait_until(lambda: child.poll() is None and _listening(port), f"gunicorn ({name}) on port {port}")
        return port

    def db_workers(self, count: int) -> None:
        """``manage.py db_worker`` processes, started and ready to take tasks."""
        logs = []
        for number in range(count):
            command = [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay"]
            self._start([*command, "--interval=0.1", f"--worker-id=bench-{number}"], f"db_worker-{number}.log")
            logs.append(self.log_dir / f"db_worker-{number}.log")
        wait_until(lambda: all("Starting worker" in log.read_text() for log in logs), "the task workers")
