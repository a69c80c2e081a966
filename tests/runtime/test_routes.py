"""The one route table (worker_runtime/config/routes.py): it is well formed, and every front door and the
builder's `test` verb serve exactly what it lists."""

from __future__ import annotations

from dataclasses import replace

import pytest

from builder.verify.lb import http_call
from worker_runtime.config import routes
from worker_runtime.config.routes import LOAD_BALANCER, LOCAL, NATIVE, OPENAI, QUEUE, ROUTES, Route
from worker_runtime.serve import load_balancer, local, normalize
from worker_runtime.serve.errors import JobError

CHAT = ROUTES[0]


def test_the_shipped_table_has_no_problem():
    assert routes.problems() == []


@pytest.mark.parametrize(
    ("route", "says"),
    [
        (replace(CHAT, method="PUT"), "method 'PUT'"),
        (replace(CHAT, job_input="grpc"), "job input 'grpc'"),
        (replace(CHAT, doors=frozenset()), "doors []"),
        (replace(CHAT, doors=frozenset({QUEUE, "ftp"})), "doors ['ftp', 'queue']"),
        (replace(CHAT, path="v1/chat"), "a path starts with /"),
        (replace(CHAT, path="/chat"), "under /v1/"),
        (replace(CHAT, doors=frozenset({LOAD_BALANCER})), "served to queue jobs too"),
        (Route("/native", "POST", NATIVE, frozenset({QUEUE}), "", ""), "load balancer only"),
    ],
)
def test_a_broken_entry_is_named(route: Route, says: str):
    (problem,) = routes.problems((route,))
    assert problem.startswith(route.path + ":") and says in problem


def test_a_route_listed_twice_is_named():
    assert routes.problems((CHAT, CHAT)) == [f"{CHAT.path}: listed twice"]


def test_the_load_balancer_serves_its_routes_with_their_methods():
    assert {r.path: r.method for r in ROUTES if LOAD_BALANCER in r.doors} == load_balancer.ROUTES
    assert {r.path for r in ROUTES if r.job_input == NATIVE} == load_balancer.NATIVE_PATHS


def test_jobs_reach_the_queue_doors_openai_routes_only():
    assert set(normalize.OPENAI_ROUTES) == {r.path for r in ROUTES if r.job_input == OPENAI}
    for r in routes.served_by(QUEUE):
        body = None if r.method == "GET" else {"prompt": "x", "messages": [{"role": "user", "content": "x"}]}
        request = normalize.normalize({"openai_route": r.path, "openai_input": body}, "m")
        assert (request.method, request.route) == (r.method, r.path)
    with pytest.raises(JobError) as refused:
        normalize.normalize({"openai_route": "/generate", "openai_input": {}}, "m")
    assert refused.value.code == "invalid_route"


def test_the_local_endpoint_serves_its_openai_routes():
    assert set(local.OPENAI_ROUTES) == {r.path for r in ROUTES if LOCAL in r.doors and r.job_input == OPENAI}


def test_the_builders_test_verb_calls_the_load_balancers_routes():
    for r in routes.served_by(LOAD_BALANCER):
        job = {"prompt": "x"} if r.job_input == NATIVE else {"openai_route": r.path, "openai_input": {}}
        call = http_call(job)
        assert (call.method, call.path) == (r.method, r.path)
