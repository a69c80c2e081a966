"""The soak's fake job API with faults (``ChaosPlatform``), and what each job must show at its end
(``check_job``): see bench/soak.py."""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.runtime.fake_platform import FakePlatform, Job, Post

STAMP = re.compile(r"<(\d+\.\d{6})>")
ENGINE_ERROR = "stand-in: generation failed"


# ----------------------------------------------------------------------------- the chaotic job API


@dataclass
class Plan:
    """What is done to one job: its engine error point, its cancel point."""

    error_after: int = -1  # tokens before the engine's error event; -1: none
    cancel_after: int = -1  # stream POSTs before it is stopped; -1: never
    route: str = "native"


@dataclass
class Tally:
    """Counters of the fake, by fault; read and reset by the reporter."""

    counts: collections.Counter[str] = field(default_factory=collections.Counter)


class ChaosPlatform(FakePlatform):
    """The fake job API with faults, as the runpod SDK 1.12.0 meets them (sources: docs/upstream-notes.md):

    - a stream POST answered 5xx is retried twice, then logged and the chunk dropped; the job goes on;
    - a dropped connection is not retried: the chunk is dropped the same way. Either way the chunk stays
      in the job's aggregate result (the SDK appends each output before posting it);
    - a slow answer just holds that job's next output (each POST is awaited);
    - a job take answered 500 or dropped is retried at once, a 429 after 5 s; the fault comes before a
      job is handed out, so no job is lost with it;
    - a stopped job's task is cancelled and posts no result.

    Bodies of refused POSTs are kept (``Job.refused``) so that a token missing from a stream can be
    matched to the fault that dropped it.
    """

    def __init__(self, args: argparse.Namespace, rng: random.Random) -> None:
        super().__init__(hold=0.5)
        self.args = args
        self.rng = rng
        self.tally = Tally()
        self.refused: dict[str, list[str]] = collections.defaultdict(list)
        self.stopped_at: dict[str, float] = {}
        self.forgotten: set[str] = set()  # stopped jobs the checker is done with: late POSTs are fine

    def count(self, what: str) -> None:
        self.tally.counts[what] += 1

    async def _read_post(self, request: Any) -> tuple[Job | None, Post]:
        raw = await request.text()  # parsed by the checker, off this loop's hot path
        return self.jobs.get(request.match_info["job"]), Post(time.monotonic(), {}, {}, raw)

    def _drop(self, request: web.Request) -> web.Response:
        transport = request.transport
        if transport is not None:
            transport.abort()  # no answer at all: the client sees the connection go
        return web.Response(status=500)

    def _late(self, request: web.Request) -> bool:
        """A POST of a stopped job that was under way when the stop came."""
        if request.match_info["job"] in self.forgotten:
            self.count("POST after stop")
            return True
        return False

    async def _done(self, request: web.Request) -> web.Response:
        if self._late(request):
            return web.Response(text="ok")
        return await super()._done(request)

    async def _stream(self, request: web.Request) -> web.Response:
        if self._late(request):
            return web.Response(text="ok")
        job, post = await self._read_post(request)
        if job is not None:
            a = self.args
            roll = self.rng.random()
            if roll < a.p_5xx + a.p_drop:
                with self._cond:
                    self.refused[job.id].append(post.body)
                if roll < a.p_5xx:
                    self.count("stream 5xx")
                    return web.Response(status=self.rng.choice((500, 502, 503)), text="injected")
                self.count("stream drop")
                return self._drop(request)
            if roll < a.p_5xx + a.p_drop + a.p_slow:
                self.count("stream slow")
                await asyncio.sleep(a.slow)
        return await super()._stream(request)  # the body read above is cached by aiohttp

    async def _take(self, request: web.Request) -> web.Response:
        if self.rng.random() < self.args.p_take_error:
            kind = self.rng.choice(("500", "429", "drop"))
            self.count(f"take {kind}")
            if kind == "drop":
                return self._drop(request)
            return web.Response(status=int(kind), text="injected")
        return await super()._take(request)

    async def _job_stop(self, request: web.Request) -> web.Response:
        resp = await super()._job_stop(request)
        if resp.status == 200 and resp.text:
            now = time.monotonic()
            with self._cond:
                for job_id in json.loads(resp.text)["jobsToStop"]:
                    self.stopped_at[job_id] = now
        return resp


# ----------------------------------------------------------------------------- checking one job


def stamps(text: str) -> list[float]:
    return [float(m) for m in STAMP.findall(text)]


def increasing(values: list[float]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


@dataclass
class Verdict:
    outcome: str  # "ok", "engine error", "cancelled"; anything else is a failure of the run
    delivered: int  # tokens in accepted stream POSTs
    dropped: int = 0  # tokens missing from the stream, found in POSTs the fake refused
    problem: str = ""


def check_job(job: Job, plan: Plan, refused: list[str], stopped: bool, tokens: int) -> Verdict:
    """Match what reached the platform to what the engine sent and to the faults injected."""
    stream = [s for post in job.stream for s in stamps(post.body)]
    seen = set(stream)
    lost_in_faults = {s for body in refused for s in stamps(body)} - seen
    v = Verdict("ok", len(stream), len(lost_in_faults))
    if not increasing(stream):
        v.outcome, v.problem = "lost", "stream tokens duplicated or out of order"
        return v
    if job.result is None:
        if stopped:
            v.outcome = "cancelled"
            return v
        v.outcome, v.problem = "stuck", "no result"
        return v
    body = job.result.body
    try:
        result = json.loads(body)
    except ValueError:
        v.outcome, v.problem = "bad result", f"result is not JSON: {body[:200]!r}"
        return v
    if "error" in result:
        error = str(result["error"])
        if plan.error_after >= 0 and ENGINE_ERROR in error:
            v.outcome = "engine error"
            expected = plan.error_after
            sent = sorted(seen | lost_in_faults)
            if len(sent) != expected or not increasing(sent):
                v.outcome, v.problem = "lost", f"{len(sent)} of the {expected} tokens before the error"
            return v
        v.outcome, v.problem = "unexplained error", error[:300]
        return v
    if plan.error_after >= 0 and not stopped:
        v.outcome, v.problem = "unexplained success", "the engine error injected into it did not fail it"
        return v
    total = stamps(body)  # the aggregate: every output the handler yielded
    if len(total) != tokens or not increasing(total):
        v.outcome, v.problem = "lost", f"{len(total)} of {tokens} tokens in the aggregate result"
        return v
    missing = set(total) - seen
    if missing - lost_in_faults or seen - set(total):
        v.outcome = "lost"
        v.problem = f"{len(missing - lost_in_faults)} tokens missing from the stream, no fault dropped them"
    return v
