"""A load-balancing worker (``ENDPOINT_TYPE=load_balancer``) against the engine reached directly, a bare
relay and a queue worker; prints ratios.

    PYTHONPATH=.:tests/engine_standin python bench/bench_lb.py [--k 8,64,128,256] [--tokens 256]
        [--rate 200] [--post-cost 0.02] [--repeat 1] [--configs direct,lb,bare,queue]

Three workers run on this machine, each ``python -m worker_runtime`` with its own engine stand-in
(stamping each token with its emission time, ``FD_STANDIN_STAMP_TOKENS``):

* ``lb``: load-balancing mode, reached over HTTP at ``/v1/chat/completions`` (the runtime's handler
  behind serve/load_balancer.py);
* ``bare``: the same server with the bare relay as its handler (bench/bare_relay.py: the engine's bytes
  forwarded as they come, nothing parsed): the cost floor of relaying through this server;
* ``queue``: platform mode through the runpod SDK's real job loop and the fake job API, every stream
  POST answered after ``--post-cost`` seconds (bench_platform.py's worker);

and ``direct`` is the ``lb`` worker's own engine, reached at its loopback port as a client of
FastDeploy's server would reach it. For each K, K OpenAI chat streams go to each configuration in
turn (the order rotating between repeats); the client is this process (aiohttp), the same for every
HTTP configuration. Per token: the delay from its emission by the engine to the client's receipt of
the whole event carrying it (the platform's receipt of the POST carrying it, for ``queue``), and the
gap since the previous token of its stream (inter-token latency, what a reader of the stream sees).
Worker CPU is the worker's process tree without the engine.

Exits 1 when a request fails or a token is lost, duplicated or reordered, never because of a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "engine_standin"), str(ROOT / "bench")]

import aiohttp  # noqa: E402
import bench_platform  # noqa: E402

from worker_runtime.engine.ports import free_ports  # noqa: E402

STAMP = re.compile(rb"<(\d+\.\d{6})>")
DONE = b"data: [DONE]"
CONFIGS = ("direct", "lb", "bare", "queue")
WAIT = bench_platform.WAIT


# ----------------------------------------------------------------------------- HTTP workers


@dataclass
class HTTPWorker:
    """A load-balancing worker: its process, log, port, and its engine's pid and port."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int
    engine_pid: int = 0
    engine_port: int = 0

    def cpu(self) -> float:
        return bench_platform.worker_cpu(self.proc.pid, self.engine_pid)

    def stop(self, keep_log: bool = False) -> None:
        bench_platform.stop_worker_process(self.name, self.proc, self.log, keep_log)


def start_http_worker(name: str, bare: bool, args: argparse.Namespace) -> HTTPWorker:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-lb-{name}-"))
    (port,) = free_ports(1)
    env = bench_platform.worker_env({}, tmp, "bench-model", max(args.k), args.tokens, args.rate)
    env.update(ENDPOINT_TYPE="load_balancer", PORT=str(port))
    proc, log = bench_platform.spawn_worker(bench_platform.worker_command(bare), env, tmp)
    return HTTPWorker(name, proc, log, port)


def wait_http_ready(worker: HTTPWorker, timeout: float = 120.0) -> None:
    text = bench_platform.wait_started(
        lambda: "Ready: health check answers 200" in worker.log.read_text(errors="replace"),
        worker.proc, worker.log, f"worker {worker.name}", timeout,
    )  # fmt: skip
    pid = re.search(r"^engine pid (\d+)", text, re.M)
    port = re.search(r"^Starting FastDeploy.* --port (\d+)", text, re.M)
    assert pid and port, text[-2000:]
    worker.engine_pid, worker.engine_port = int(pid.group(1)), int(port.group(1))


# ----------------------------------------------------------------------------- one phase


@dataclass
class Sample:
    """What one (configuration, K) phase measured, pooled over repeats."""

    tokens: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    failed: list[str] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)  # emission -> receipt, per token
    gaps: list[float] = field(default_factory=list)  # receipt - the stream's previous receipt


def check_stream(data: bytes, reads: list[tuple[int, float]], tokens: int, out: Sample) -> None:
    """Per-token delays and gaps of one stream's bytes (``reads``: end offset and time of each read);
    records a failure for a lost, duplicated or reordered token or a stream without [DONE].

    A token counts as received when the event carrying it is complete: a client can use no less (the
    engine and a bare relay may hand out half an event, the runtime's relay whole events only)."""
    stamps: list[float] = []
    received: list[float] = []
    i = 0
    for m in STAMP.finditer(data):
        end = data.find(b"\n\n", m.end())
        end = len(data) if end < 0 else end + 2
        while reads[i][0] < end:
            i += 1
        stamps.append(float(m.group(1)))
        received.append(reads[i][1])
    if not data.rstrip().endswith(DONE):
        out.failed.append(f"stream did not end with [DONE]: {data[-300:]!r}")
    if len(stamps) != tokens or stamps != sorted(set(stamps)):
        out.failed.append(f"{len(stamps)} of {tokens} tokens delivered (or out of order)")
    out.tokens += len(stamps)
    out.delays += [r - s for r, s in zip(received, stamps, strict=True)]
    out.gaps += [b - a for a, b in itertools.pairwise(received)]


async def one_stream(session: aiohttp.ClientSession, url: str, tokens: int, out: Sample) -> None:
    body = {"model": "bench-model", "messages": bench_platform.MESSAGES, "max_tokens": tokens, "stream": True}
    data = bytearray()
    reads: list[tuple[int, float]] = []
    try:
        async with session.post(url, json=body) as resp:
            if resp.status != 200:
                out.failed.append(f"HTTP {resp.status}: {(await resp.text())[:300]}")
                return
            async for chunk in resp.content.iter_any():
                data += chunk
                reads.append((len(data), time.monotonic()))
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        out.failed.append(f"{type(exc).__name__}: {exc}")
        return
    check_stream(bytes(data), reads, tokens, out)


async def http_phase(url: str, k: int, tokens: int, cpu: object, out: Sample) -> None:
    """K streams at once from this process; ``cpu()`` is the worker CPU counter (None: no worker)."""
    timeout = aiohttp.ClientTimeout(total=WAIT)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        c0 = cpu() if callable(cpu) else 0.0
        t0 = time.monotonic()
        await asyncio.gather(*(one_stream(session, url, tokens, out) for _ in range(k)))
        out.wall += time.monotonic() - t0
        out.cpu += (cpu() if callable(cpu) else 0.0) - c0


def queue_phase(worker: bench_platform.Worker, k: int, args: argparse.Namespace, out: Sample) -> None:
    """K OpenAI-route jobs through the SDK's job loop (bench_platform.py's phase)."""
    sample = bench_platform.Sample()
    bench_platform.run_phase([worker], "openai", k, args, [sample])
    out.tokens += sample.tokens
    out.wall += sample.wall
    out.cpu += sample.cpu
    out.delays += sample.delays
    out.failed += sample.failed


# ----------------------------------------------------------------------------- report


def row(name: str, s: Sample, worker: bool) -> str:
    pct = bench_platform.pct
    cpu = f"{1e6 * s.cpu / max(1, s.tokens):10.1f}" if worker else f"{'-':>10}"
    gaps = (
        f"{1000 * pct(s.gaps, 0.5):7.2f} {1000 * pct(s.gaps, 0.99):7.2f}" if s.gaps else f"{'-':>7} {'-':>7}"
    )
    return (
        f"  {name:<7} {s.tokens / max(s.wall, 1e-9):8.0f} {1000 * pct(s.delays, 0.5):8.2f}"
        f" {1000 * pct(s.delays, 0.99):8.2f}  {gaps} {cpu}"
    )


HEADER = "  config     tok/s  delay ms: p50      p99  ITL ms: p50     p99  CPU us/tok"


def ratios(samples: dict[str, Sample]) -> list[str]:
    pct = bench_platform.pct

    def r(a: float, b: float) -> str:
        return f"{a / b:.3f}" if b else "n/a"

    def cpu(s: Sample) -> float:
        return s.cpu / max(1, s.tokens)

    out = []
    lb, direct, bare, queue = (samples.get(n) for n in ("lb", "direct", "bare", "queue"))
    if lb and direct:
        out.append(
            f"  lb/direct: delay p50 {r(pct(lb.delays, 0.5), pct(direct.delays, 0.5))}"
            f" p99 {r(pct(lb.delays, 0.99), pct(direct.delays, 0.99))}"
            f"  ITL p50 {r(pct(lb.gaps, 0.5), pct(direct.gaps, 0.5))}"
            f" p99 {r(pct(lb.gaps, 0.99), pct(direct.gaps, 0.99))} (target <=1.05)"
            f"  throughput {r(lb.tokens / lb.wall, direct.tokens / direct.wall)}"
            f"  added delay p50 {1000 * (pct(lb.delays, 0.5) - pct(direct.delays, 0.5)):.2f} ms"
        )
    if lb and bare:
        out.append(
            f"  lb/bare: CPU/token {r(cpu(lb), cpu(bare))} (target <=1.1)"
            f"  delay p50 {r(pct(lb.delays, 0.5), pct(bare.delays, 0.5))}"
            f" p99 {r(pct(lb.delays, 0.99), pct(bare.delays, 0.99))}"
        )
    if lb and queue:
        out.append(
            f"  queue/lb: delay p50 {r(pct(queue.delays, 0.5), pct(lb.delays, 0.5))}"
            f" p99 {r(pct(queue.delays, 0.99), pct(lb.delays, 0.99))}"
            f"  CPU/token {r(cpu(queue), cpu(lb))}"
        )
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = bench_platform.load_options(__doc__)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="which of direct, lb, bare, queue")
    args = parser.parse_args(argv)
    args.k = [int(x) for x in str(args.k).split(",") if x.strip()]
    args.configs = [c for c in CONFIGS if c in args.configs.split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    http: dict[str, HTTPWorker] = {}
    queue: bench_platform.Worker | None = None
    failures: list[str] = []
    try:
        if {"lb", "direct"} & set(args.configs):
            http["lb"] = start_http_worker("lb", False, args)
        if "bare" in args.configs:
            http["bare"] = start_http_worker("bare", True, args)
        if "queue" in args.configs:
            queue = bench_platform.start_worker("queue", False, args)
        for w in http.values():
            wait_http_ready(w)
        if queue is not None:
            bench_platform.wait_ready(queue)

        def phase(name: str, k: int, out: Sample) -> None:
            if name == "queue":
                assert queue is not None
                queue_phase(queue, k, args, out)
            elif name == "direct":
                url = f"http://127.0.0.1:{http['lb'].engine_port}/v1/chat/completions"
                asyncio.run(http_phase(url, k, args.tokens, None, out))
            else:
                w = http[name]
                asyncio.run(
                    http_phase(f"http://127.0.0.1:{w.port}/v1/chat/completions", k, args.tokens, w.cpu, out)
                )

        for name in args.configs:  # warm-up, not counted
            phase(name, 2, Sample())
        print(
            f"{args.tokens} tokens per stream at {args.rate:g} tok/s, OpenAI chat streams, "
            f"{args.repeat} run(s) per phase, configurations one after the other; queue: "
            f"{args.post_cost * 1000:g} ms per stream POST",
            flush=True,
        )
        for k in args.k:
            samples = {name: Sample() for name in args.configs}
            for rep in range(args.repeat):
                order = args.configs[rep % len(args.configs) :] + args.configs[: rep % len(args.configs)]
                for name in order:
                    phase(name, k, samples[name])
            print(f"K={k}", flush=True)
            print(HEADER)
            for name, s in samples.items():
                print(row(name, s, worker=name != "direct"))
                failures += [f"{name} K={k}: {f}" for f in s.failed]
            for line in ratios(samples):
                print(line)
            sys.stdout.flush()
    finally:
        keep = bool(failures) or sys.exc_info()[0] is not None
        for w in http.values():
            w.stop(keep_log=keep)
        if queue is not None:
            queue.stop(keep_log=keep)
    return bench_platform.failed(failures, "streams")


if __name__ == "__main__":
    sys.exit(main())
