"""Concurrency for tests: threads with their own connections, db_worker processes, a proxy that cuts them off."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 120  # seconds for anything to happen


def run_concurrently(functions: list[Callable[[], object]]) -> list[object]:
    """Start every function at once (behind a barrier) in its own thread with its own DB connection."""
    barrier = threading.Barrier(len(functions))
    results: list[object] = [None] * len(functions)
    errors: list[Exception] = []

    def worker(index: int, func: Callable[[], object]) -> None:
        try:
            barrier.wait()
            results[index] = func()
        except Exception as exc:  # noqa: BLE001  collected and asserted on below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


def database_url(port: int | None = None) -> str:
    """The test database (not the developer's) as a DATABASE_URL, optionally through a proxy on ``port``."""
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    host = f"127.0.0.1:{port}" if port else f"{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}"
    return f"postgres://{quote(db['USER'], safe='')}{password}@{host}/{db['NAME']}"


def start_worker(name: str, log: Path, *, db_url: str = "", settings: dict | None = None) -> subprocess.Popen:
    """A db_worker process named ``name`` (its worker id), logging to ``log``, with extra Django settings."""
    env = {
        **os.environ,
        "DATABASE_URL": db_url or database_url(),
        "SANDBOX": "false",
        "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
        "ORGBILLING_TEST_SETTINGS": json.dumps(settings or {}),
    }
    command = [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.05"]
    return subprocess.Popen(
        [*command, "--worker-id", name], cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )


def wait_for(condition: Callable[[], object], what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def wait_started(logs: list[Path]) -> None:
    wait_for(lambda: all("Starting worker" in log.read_text() for log in logs), "the workers to start")


def stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    for worker in workers:
        worker.wait(DEADLINE)


class TcpProxy:
    """Forwards local connections to ``target``; ``cut()`` drops the open ones as a failing network would.

    New connections are still forwarded after a cut, as when the database comes back.
    """

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        with self._lock:
            dropped, self._open = self._open, []
        for end in dropped:
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            end.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()
