"""The handler's own CPU per token against the bare relay, in one process; prints ratios.

    python bench/bench_relay.py [--tokens 256] [--per-read 1,4,8,16] [--rounds 9] [--aa] [--cut]
        [--tokens-per-event 1]

``bench_platform.py`` measures whole workers: the engine stand-in, the fake job API and the scheduler
share the cores with the worker there, and its A/A runs spread more than two handlers differ
(docs/performance.md). This benchmark keeps only what differs. Both handlers read the same bytes, a chat
stream shaped as FastDeploy 2.5 writes it, from a fake engine response handing out ``E`` events per read
(``--cut``: each read also ends inside the next event). Every yield goes through the runpod SDK's own job
loop (``rp_job.handle_job`` and ``run_job_generator``, with the aggregate the worker asks for) and its
serialization of each stream POST (``rp_http._handle_result``); only the network send
(``rp_http._transmit``) does nothing. The figure is this process's CPU time, the median of rounds that
alternate the two handlers; ``--aa`` puts the runtime's handler in both slots to show the spread.

Exits 1 when a handler loses, reorders or garbles a token, never because of a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests" / "engine_standin")]

from bare_relay import bare_make_handler  # noqa: E402
from fastdeploy.entrypoints.openai.api_server import (  # noqa: E402  (the engine stand-in)
    character_cut,
    chat_opening_delta,
    chat_token_delta,
    stream_choice,
    stream_chunk,
)

from worker_runtime.serve.handler import HandlerState, make_handler  # noqa: E402
from worker_runtime.serve.lifecycle import tune_gc  # noqa: E402
from worker_runtime.serve.queue import sdk_log_env  # noqa: E402
from worker_runtime.serve.sse import SSEParser  # noqa: E402

MESSAGES = [{"role": "user", "content": "benchmark 🚀"}]
WORDS = ["Hello", " wörld", " 你好", " 🚀", " streaming", " tokens", ",", " ok"]


# ----------------------------------------------------------------------------- the engine's bytes


def chat_stream(tokens: int, per_event: int = 1) -> tuple[list[bytes], str]:
    """The events of one chat stream, built by the engine stand-in as 2.5 writes them (its stray space
    ends the opening chunk only; ``per_event`` tokens' choices per chunk, as
    ``max_streaming_response_tokens`` asks), and the text they carry."""
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "m"}
    opening = stream_chunk(head, True, [stream_choice(True, 0, chat_opening_delta(), None, opening=True)])
    events = [b"data: " + opening + b" \n\n"]
    text = ""
    pending = []
    for i in range(tokens):
        word = WORDS[i % len(WORDS)]
        text += word
        last = i == tokens - 1
        pending.append(stream_choice(True, 0, chat_token_delta(word, ""), "length" if last else None))
        if len(pending) == per_event or last:
            events.append(b"data: " + stream_chunk(head, True, pending) + b"\n\n")
            pending = []
    events.append(b"data: [DONE]\n\n")
    return events, text


def reads(events: list[bytes], per_read: int, cut: bool) -> list[bytes]:
    """What each read of the engine connection returns: ``per_read`` events, and with ``cut`` the
    first part of the next one too (up to inside a character, as the stand-in cuts its writes)."""
    events = list(events)
    out: list[bytes] = []
    for start in range(0, len(events), per_read):
        group = b"".join(events[start : start + per_read])
        following = start + per_read
        if cut and following < len(events):
            at = character_cut(events[following])
            group += events[following][:at]
            events[following] = events[following][at:]  # the rest starts the next read
        out.append(group)
    return out


class FakeContent:
    def __init__(self, reads: list[bytes]) -> None:
        self._reads = iter(reads)

    async def readany(self) -> bytes:
        return next(self._reads, b"")

    def read_nowait(self, n: int = -1) -> bytes:
        return b""

    async def iter_any(self) -> AsyncIterator[bytes]:
        while data := await self.readany():
            yield data


class FakeResponse:
    status = 200

    def __init__(self, reads: list[bytes]) -> None:
        self.content = FakeContent(reads)

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakeRequest:
    """What ``session.request`` returns: awaitable (the runtime) and an async context (the bare relay)."""

    def __init__(self, reads: list[bytes]) -> None:
        self.response = FakeResponse(reads)

    def __await__(self) -> Iterator[Any]:
        yield from ()
        return self.response

    async def __aenter__(self) -> FakeResponse:
        return self.response

    async def __aexit__(self, *exc: object) -> None:
        pass


class FakeEngine:
    """Stands where ``EngineClient`` does: every request answers with the next prepared stream."""

    request_timeout = 600.0

    def __init__(self) -> None:
        self.streams: list[list[bytes]] = []

    def session(self) -> FakeEngine:
        return self

    def url(self, route: str) -> str:
        return "http://engine" + route

    def request(self, method: str, url: str, **_body: Any) -> FakeRequest:
        return FakeRequest(self.streams.pop())


# ----------------------------------------------------------------------------- the SDK's job loop


class Platform:
    """The SDK's stream and result POSTs, serialized by the SDK and kept here instead of sent."""

    def __init__(self) -> None:
        self.posts: list[str] = []
        self.headers: dict[str, str] = {}  # the SDK sets X-Request-ID on its session per result

    async def transmit(self, session: Any, url: str, job_data: str) -> None:
        self.posts.append(job_data)


def job_input(route: str) -> dict[str, Any]:
    """A streamed chat job (the fake engine answers every request with the prepared stream)."""
    if route == "openai":
        body = {"model": "bench-model", "messages": MESSAGES, "stream": True}
        return {"openai_route": "/v1/chat/completions", "openai_input": body}
    return {"messages": MESSAGES, "stream": True}


def delivered_text(posts: list[str]) -> str:
    """The text of one job's stream POSTs (the last POST is the result), whatever the handler."""
    chunks = [json.loads(p)["output"] for p in posts[:-1]]
    if not all(isinstance(o, dict) for o in chunks):  # SSE text, not native chunks
        parser = SSEParser()
        events = parser.feed("".join(chunks).encode()) + parser.close()
        chunks = [json.loads(e.data) for e in events if not e.is_done]
    return "".join(c["delta"].get("content") or "" for o in chunks for c in o["choices"])


async def run_jobs(
    handler: Callable[..., Any], platform: Platform, jobs: int, route: str
) -> tuple[float, int, list[list[str]]]:
    """(CPU seconds, stream POSTs, each job's POSTs) for ``jobs`` jobs, one after the other."""
    from runpod.serverless.modules import rp_job

    config = {"handler": handler, "return_aggregate_stream": True, "rp_args": {}}
    per_job: list[list[str]] = []
    cpu = 0.0
    for i in range(jobs):
        platform.posts = []
        job = {"id": f"job-{i}", "input": job_input(route)}
        t0 = time.process_time()
        await rp_job.handle_job(platform, config, job)
        cpu += time.process_time() - t0
        per_job.append(platform.posts)
    return cpu, sum(len(p) - 1 for p in per_job), per_job


async def outputs_of(
    handler: Callable[..., Any], engine: FakeEngine, stream: list[bytes], route: str
) -> list[Any]:
    engine.streams = [stream]
    return [out async for out in handler({"id": "prepare", "input": job_input(route)})]


def objects_make_handler(prepared: list[list[Any]]) -> Callable[[dict[str, Any]], AsyncIterator[Any]]:
    """The floor of any native relay: the runtime's own outputs, made beforehand (outside the
    measurement) and only yielded. What remains is what the SDK spends on objects (two debug
    messages, a JSON dump per POST, the aggregate): a handler that yields objects pays it."""
    queue: list[list[Any]] = []

    async def handler(job: dict[str, Any]) -> AsyncIterator[Any]:
        if not queue:
            queue.extend(reversed(prepared))
        for out in queue.pop():
            yield out

    return handler


# ----------------------------------------------------------------------------- report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=256, help="tokens per stream")
    parser.add_argument("--per-read", default="1,4,8,16", help="events per engine read, comma-separated")
    parser.add_argument("--cut", action="store_true", help="each read also ends inside the next event")
    parser.add_argument(
        "--tokens-per-event", type=int, default=1, help="choices per chunk (max_streaming_response_tokens)"
    )
    parser.add_argument("--jobs", type=int, default=20, help="jobs per handler per round")
    parser.add_argument("--rounds", type=int, default=9, help="rounds (handlers alternate; median)")
    parser.add_argument("--routes", default="openai,native", help="openai, native or both")
    parser.add_argument("--aa", action="store_true", help="the runtime's handler in both slots")
    args = parser.parse_args(argv)
    args.per_read = [int(e) for e in args.per_read.split(",")]
    args.routes = [r for r in args.routes.split(",") if r.strip()]
    return args


async def bench(args: argparse.Namespace) -> int:
    engine = FakeEngine()
    platform = Platform()
    # The SDK reads its log level when imported: set it first, as the worker does (sdk_log_env).
    os.environ.update(sdk_log_env(os.environ))
    from runpod.serverless.modules import rp_http

    rp_http._transmit = platform.transmit  # the one network step of the SDK's POSTs
    runtime = HandlerState(engine, "bench-model", 1)  # type: ignore[arg-type]
    floor = make_handler if args.aa else bare_make_handler
    handlers = {"ours": make_handler(runtime), "bare": floor(runtime)}
    tune_gc()  # as the worker does once the engine is up
    events, text = chat_stream(args.tokens, args.tokens_per_event)
    failures = 0
    print(
        f"{args.tokens} tokens per stream ({args.tokens_per_event} per event), {args.jobs} jobs per handler"
        f" and round, {args.rounds} rounds"
        + (", reads cut inside events" if args.cut else "")
        + (" (A/A: 'bare' runs the runtime's handler too)" if args.aa else "")
    )
    print("route   E/read  handler  CPU us/token  us/yield  yields/job   CPU/token vs bare")
    for route in args.routes:
        for per_read in args.per_read:
            streams = [reads(events, per_read, args.cut) for _ in range(args.jobs)]
            names = ["ours", "bare"]
            if route == "native" and not args.aa:
                names.append("objects")
                prepared = [await outputs_of(handlers["ours"], engine, s, route) for s in streams]
                handlers["objects"] = objects_make_handler(prepared)
            cpu: dict[str, list[float]] = {name: [] for name in names}
            yields: dict[str, int] = {}
            for rnd in range(-1, args.rounds):  # round -1 warms up and is not counted
                for name in names[rnd % len(names) :] + names[: rnd % len(names)]:
                    engine.streams = list(reversed(streams))
                    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                        seconds, posts, per_job = await run_jobs(handlers[name], platform, args.jobs, route)
                    if rnd < 0:
                        continue
                    cpu[name].append(seconds)
                    yields[name] = posts
                    bad = [i for i, p in enumerate(per_job) if delivered_text(p) != text]
                    if bad:
                        failures += 1
                        print(f"  {name} {route} E={per_read}: job {bad[0]} delivered a different text")
            tokens = args.tokens * args.jobs
            per_token = {n: statistics.median(c) / tokens * 1e6 for n, c in cpu.items()}
            for name in names:
                print(
                    f"{route:<7} {per_read:6d}  {name:<7} {per_token[name]:12.2f}"
                    f" {statistics.median(cpu[name]) / max(1, yields[name]) * 1e6:9.2f}"
                    f" {yields[name] / args.jobs:11.1f}"
                    + (f"   {per_token[name] / per_token['bare']:.3f}" if name != "bare" else "")
                )
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(bench(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
