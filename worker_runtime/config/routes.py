"""The routes the worker serves: one table for every front door, the builder's test and the docs.

Each route says how a request on it becomes a job input (the OpenAI passthrough, ``openai_route`` +
``openai_input``, or the native job input as the body) and which front doors serve it. Adding a route is
one entry here plus its tests; the servers, the builder's `test` verb and the generated route tables in
the docs read it. FastDeploy serves more on its port (control routes that pause or abort every request,
/metrics, /health, pooling-only routes): none of them is here, so no job can reach them.
"""

from __future__ import annotations

from dataclasses import dataclass

# The front doors.
QUEUE = "queue"  # a queue job's {"openai_route": ..., "openai_input": ...} (also RunPod's /openai/v1)
LOAD_BALANCER = "load_balancer"  # the worker's own HTTP server on PORT
LOCAL = "local"  # `--local`: the RunPod-shaped endpoint's /openai/v1
DOORS = (QUEUE, LOAD_BALANCER, LOCAL)

# How a request becomes a job input.
OPENAI = "openai"  # {"openai_route": path, "openai_input": body}
NATIVE = "native"  # the body is the native job input ({"messages"|"prompt", "sampling_params", "stream"})


@dataclass(frozen=True)
class Route:
    path: str
    method: str  # "GET" or "POST"
    job_input: str  # OPENAI or NATIVE
    doors: frozenset[str]
    body: str  # what the request carries (docs)
    answer: str  # what it answers (docs)


ROUTES: tuple[Route, ...] = (
    Route(
        "/v1/chat/completions",
        "POST",
        OPENAI,
        frozenset(DOORS),
        "OpenAI chat request",
        'OpenAI response, or SSE chunks when `"stream": true`',
    ),
    Route(
        "/v1/completions",
        "POST",
        OPENAI,
        frozenset(DOORS),
        "OpenAI completions request",
        "OpenAI response, or SSE chunks",
    ),
    Route("/v1/models", "GET", OPENAI, frozenset(DOORS), "—", "the served model"),
    Route(
        "/generate",
        "POST",
        NATIVE,
        frozenset({LOAD_BALANCER}),
        'a queue job\'s `input`: `{"messages": [...]}` or `{"prompt": "..."}` with `sampling_params` and '
        "`stream`",
        'the OpenAI response object; with `"stream": true`, SSE `data: <chunk>` events ending with '
        "`data: [DONE]`",
    ),
)


def served_by(door: str) -> tuple[Route, ...]:
    """The routes a front door serves, in table order."""
    return tuple(r for r in ROUTES if door in r.doors)


def paths(door: str, job_input: str | None = None, method: str | None = None) -> tuple[str, ...]:
    """The paths a front door serves, narrowed to one kind of job input and/or one method."""
    return tuple(
        r.path
        for r in served_by(door)
        if (job_input is None or r.job_input == job_input) and (method is None or r.method == method)
    )


def problems(routes: tuple[Route, ...] = ROUTES) -> list[str]:
    """What is wrong with a route table (a test keeps the shipped one empty)."""
    out = []
    seen: set[str] = set()
    for r in routes:
        if r.path in seen:
            out.append(f"{r.path}: listed twice")
        seen.add(r.path)
        if not r.path.startswith("/"):
            out.append(f"{r.path}: a path starts with /")
        elif r.job_input == OPENAI and not r.path.startswith("/v1/"):
            out.append(f"{r.path}: an OpenAI route is the engine's own path, under /v1/")
        if r.method not in ("GET", "POST"):
            out.append(f"{r.path}: method {r.method!r}; allowed: GET, POST")
        if r.job_input not in (OPENAI, NATIVE):
            out.append(f"{r.path}: job input {r.job_input!r}; allowed: {OPENAI}, {NATIVE}")
        if r.job_input == NATIVE and r.doors - {LOAD_BALANCER}:
            out.append(f"{r.path}: the native format has a path on the load balancer only")
        if not r.doors or not r.doors <= set(DOORS):
            out.append(f"{r.path}: doors {sorted(r.doors)}; allowed: some of {', '.join(DOORS)}")
        elif r.job_input == OPENAI and QUEUE not in r.doors:
            # Every door hands an OpenAI request to the one job handler as an openai_route job.
            out.append(f"{r.path}: an OpenAI route is served to queue jobs too (every door runs it as one)")
    return out
