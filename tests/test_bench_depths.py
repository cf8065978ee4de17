"""Bench requests run at a spread of stack depths (bench/stack_depth.py): the load generator names one per request and
the bench servers' probe middleware runs the request that many frames deeper."""

from __future__ import annotations

import inspect

from django.http import HttpResponse
from django.test import RequestFactory

from bench.load import Request, at_depths
from bench.probe import ProbeMiddleware
from bench.stack_depth import HEADER, PADDING


def test_each_request_names_the_next_depth_keeping_its_headers():
    requests = at_depths([Request("GET", "/x", headers={"Authorization": "Bearer t"})] * (len(PADDING) + 2))
    depths = [int(request.headers[HEADER]) for request in requests]
    assert depths == [*PADDING, 0, 1] and all(r.headers["Authorization"] == "Bearer t" for r in requests)


def test_the_probe_runs_the_view_that_many_frames_deeper_and_ignores_a_bad_depth():
    seen = []

    def view(request):
        seen.append(len(inspect.stack(0)))
        return HttpResponse()

    probe = ProbeMiddleware(view)
    for depth in ("0", "37", "-5", "x", "100000"):
        probe(RequestFactory().get("/", headers={HEADER: depth}))
    base = seen[0]
    assert [frames - base for frames in seen] == [0, 37, 0, 0, 200]
