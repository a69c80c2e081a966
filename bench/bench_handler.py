"""Direct engine calls vs the same calls through the worker handler, in one run; prints ratios.

    PYTHONPATH=.:tests/engine_standin python bench/bench_handler.py [--requests 300] [--streams 64]

Engine: the test stand-in (launched through the runtime's real command line), so the figures measure
the handler's own cost. The reference figures to compare with: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "engine_standin")]

import aiohttp  # noqa: E402

from worker_runtime.config.engine_args import EnginePorts, engine_argv, engine_env  # noqa: E402
from worker_runtime.config.settings import load_flag_table, load_settings  # noqa: E402
from worker_runtime.engine.client import EngineClient  # noqa: E402
from worker_runtime.engine.ports import free_ports  # noqa: E402
from worker_runtime.serve.handler import HandlerState, make_handler  # noqa: E402
from worker_runtime.serve.sse import SSEParser  # noqa: E402

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "benchmark 🚀"}]
POST_COST = 0.020  # one platform POST per yield


def start_engine(token_delay: float) -> tuple[subprocess.Popen[bytes], str]:
    settings = load_settings({"MODEL": "bench-model", "MAX_NUM_SEQS": "128"})
    ports = EnginePorts(*free_ports(4))
    argv = engine_argv(settings, load_flag_table()["releases"]["2.5.0"], ports, sys.executable)
    env = engine_env(settings, dict(os.environ), tempfile.mkdtemp(prefix="bench-fdlog-"))
    env.update(
        PYTHONPATH=str(ROOT / "tests" / "engine_standin"),
        FD_STANDIN_LOAD_DELAY="0",
        FD_STANDIN_TOKEN_DELAY=str(token_delay),
        FD_STANDIN_ANSWER_TOKENS="128",
    )
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{ports.http}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/health", timeout=1).close()
            return proc, base
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("stand-in engine did not start") from None
            time.sleep(0.05)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def latency(base: str, n: int) -> tuple[list[float], list[float]]:
    body = {"model": "bench-model", "messages": MESSAGES, "max_tokens": 16}
    direct: list[float] = []
    via: list[float] = []
    runtime = HandlerState(EngineClient(base, 60), "bench-model", 1)
    handler = make_handler(runtime)
    job = {"id": "b", "input": {"openai_route": CHAT, "openai_input": body}}
    async with aiohttp.ClientSession() as session:
        for i in range(n * 2 + 20):  # interleaved, after a warm-up, so drift hits both equally
            t0 = time.perf_counter()
            if i % 2:
                async with session.post(base + CHAT, json=body) as resp:
                    json.loads(await resp.read())
            else:
                [_ async for _ in handler(job)]
            dt = (time.perf_counter() - t0) * 1000
            if i >= 20:
                (direct if i % 2 else via).append(dt)
    await runtime.client.close()
    return direct, via


def count_tokens(sse_text: str) -> tuple[int, bool]:
    """(content events, every event whole) for SSE text."""
    parser = SSEParser()
    events = parser.feed(sse_text.encode())
    whole = not parser.close() and sse_text.endswith("\n\n")
    tokens = 0
    for e in events:
        if not e.is_done:
            for c in json.loads(e.data)["choices"]:
                tokens += bool(c["delta"].get("content"))
    return tokens, whole


async def direct_stream(session: aiohttp.ClientSession, base: str, body: dict[str, Any]) -> int:
    parser = SSEParser()
    tokens = 0
    async with session.post(base + CHAT, json=body) as resp:
        async for data in resp.content.iter_any():
            for e in parser.feed(data):
                if not e.is_done:
                    for c in json.loads(e.data)["choices"]:
                        tokens += bool(c["delta"].get("content"))
    return tokens


async def handler_stream(handler: Any, body: dict[str, Any], post_cost: float = 0.0) -> tuple[int, int, bool]:
    tokens = yields = 0
    all_whole = True
    async for out in handler({"id": "s", "input": {"openai_route": CHAT, "openai_input": body}}):
        if isinstance(out, dict):
            raise SystemExit(f"job failed: {out}")
        yields += 1
        n, whole = count_tokens(out)
        tokens += n
        all_whole = all_whole and whole
        if post_cost:
            await asyncio.sleep(post_cost)
    return tokens, yields, all_whole


async def throughput(base: str, streams: int) -> dict[str, float]:
    body = {"model": "bench-model", "messages": MESSAGES, "max_tokens": 128, "stream": True}
    out: dict[str, float] = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        cpu0, t0 = time.process_time(), time.perf_counter()
        counts = await asyncio.gather(*(direct_stream(session, base, body) for _ in range(streams)))
        out["direct_tps"] = sum(counts) / (time.perf_counter() - t0)
        out["direct_cpu_per_tok"] = (time.process_time() - cpu0) / sum(counts)
    runtime = HandlerState(EngineClient(base, 60), "bench-model", streams)
    handler = make_handler(runtime)
    cpu0, t0 = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(handler_stream(handler, body) for _ in range(streams)))
    tokens = sum(r[0] for r in results)
    out["handler_tps"] = tokens / (time.perf_counter() - t0)
    out["handler_cpu_per_tok"] = (time.process_time() - cpu0) / tokens
    # With a platform POST per yield: how many yields, all on event boundaries?
    paced = await asyncio.gather(*(handler_stream(handler, body, POST_COST) for _ in range(streams)))
    out["yields_per_stream_64"] = statistics.mean(r[1] for r in paced)
    out["tokens_per_stream"] = statistics.mean(r[0] for r in paced)
    single = await handler_stream(handler, body, POST_COST)
    out["yields_single_stream"] = single[1]
    out["all_yields_whole_events"] = float(all(r[2] for r in [*paced, single]))
    await runtime.client.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--streams", type=int, default=64)
    args = parser.parse_args()

    fast, fast_base = start_engine(0.0)
    paced, paced_base = start_engine(0.01)  # 100 tokens/s per stream
    try:
        direct, via = asyncio.run(latency(fast_base, args.requests))
        t = asyncio.run(throughput(paced_base, args.streams))
    finally:
        for proc in (fast, paced):
            proc.terminate()
            proc.wait(10)

    d50, d99, h50, h99 = pct(direct, 0.5), pct(direct, 0.99), pct(via, 0.5), pct(via, 0.99)
    print(f"latency, concurrency 1, {args.requests} non-streamed requests each:")
    print(f"  direct  p50 {d50:.3f} ms  p99 {d99:.3f} ms")
    print(f"  handler p50 {h50:.3f} ms  p99 {h99:.3f} ms")
    print(f"  added   p50 {h50 - d50:+.3f} ms (target <= 0.3; vLLM worker ~0.8)  p99 {h99 - d99:+.3f} ms")
    print(f"  ratio   p50 {h50 / d50:.3f}  p99 {h99 / d99:.3f}")
    print(f"throughput, {args.streams} concurrent streams of 128 tokens at 100 tok/s:")
    print(f"  direct  {t['direct_tps']:.0f} tok/s  CPU {t['direct_cpu_per_tok'] * 1e6:.1f} us/token")
    print(f"  handler {t['handler_tps']:.0f} tok/s  CPU {t['handler_cpu_per_tok'] * 1e6:.1f} us/token")
    print(
        f"  ratio   throughput {t['handler_tps'] / t['direct_tps']:.3f} (target >= 0.99)  "
        f"CPU/token {t['handler_cpu_per_tok'] / t['direct_cpu_per_tok']:.2f}"
    )
    print(
        f"yields with a {POST_COST * 1000:.0f} ms POST per yield "
        f"({t['tokens_per_stream']:.0f} tokens/stream):"
    )
    print(
        f"  single stream {t['yields_single_stream']:.0f} yields, "
        f"{args.streams} streams {t['yields_per_stream_64']:.1f} yields each (vLLM worker: 66)"
    )
    print(f"  every yield ends on an event boundary: {bool(t['all_yields_whole_events'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
