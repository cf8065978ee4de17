"""Helpers for tests that run servers in other processes."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on right now (bound to port 0, then released for the server to take)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
