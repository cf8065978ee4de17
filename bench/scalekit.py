"""The benchmark's Scalekit: the tests' JWKS stand-in, plus the two management calls orgbilling makes in the suite.

A subscription event that changes what an organization bought sends its new
seat cap to Scalekit after the commit (``seat_limits``): a client-credentials
token, then ``PATCH .../settings/usermanagement``. The tests' stub refuses
both (it plays an outage); here they are answered at once, as a healthy
Scalekit would, and counted, so a benchmark measures orgbilling and not a
retry loop against a stand-in that is down.
"""

from __future__ import annotations

import json
import re

from tests.scalekit_support import ScalekitStub, _JwksHandler

_SEAT_CAP = re.compile(r"^/api/v1/organizations/[^/]+/settings/usermanagement$")


class _Handler(_JwksHandler):
    def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
        stub: BenchScalekit = self.server.stub  # type: ignore[attr-defined]
        if self.path != "/oauth/token":
            self.send_error(404)
            return
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with stub.lock:
            stub.token_hits += 1
        self._send(json.dumps({"access_token": "bench-token", "expires_in": 3600}).encode(), "application/json")

    def do_PATCH(self) -> None:  # noqa: N802
        stub: BenchScalekit = self.server.stub  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if not _SEAT_CAP.match(self.path):
            self.send_error(404)
            return
        with stub.lock:
            stub.seat_cap_calls += 1
        self._send(json.dumps({"settings": body.get("settings", {})}).encode(), "application/json")


class BenchScalekit(ScalekitStub):
    def __init__(self) -> None:
        super().__init__()
        self.seat_cap_calls = 0
        self._server.RequestHandlerClass = _Handler
