"""Streaming through the RunPod SDK's real job loop (platform mode), against a bare relay; prints ratios.

    PYTHONPATH=.:tests/engine_standin python bench/bench_platform.py [--k 8,64,128,256] [--tokens 256]
        [--rate 200] [--post-cost 0.02] [--repeat 1] [--sdk-log-level INFO]

Two workers run side by side, each ``python -m worker_runtime`` in platform mode with its own engine
stand-in and its own fake RunPod job API (tests/runtime/fake_platform.py, in a process of its own:
batch job take, every stream POST answered after ``--post-cost`` seconds): one with the runtime's
handler, one with a bare relay (bench/bare_relay.py: each raw chunk yielded as received, nothing parsed: the
cost floor of any handler).
For each K, K OpenAI-route streams, then K native streams, go to both workers at once, so that
whatever else loads the machine loads both alike (``--alternate``: one worker after the other, the
order alternating between repeats). The stand-in stamps each token with its emission time, so the
delay from the engine to the platform's receipt of the POST carrying it is measured per token.

``--aa`` runs the runtime's handler in both slots: the spread of its ratios is what this machine can
resolve (on a loaded 2-core host, ratios of an A/A run swing by tens of percent). The handlers' own
CPU, without the rest of the machine, is what ``bench_relay.py`` measures.

Worker CPU is the worker's process tree without the engine. Exits 1 when a job fails or a token is
lost or duplicated, never because of a timing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "engine_standin"), str(ROOT / "bench")]

import psutil  # noqa: E402
from bare_relay import bare_make_handler  # noqa: E402

from tests.runtime.fake_platform import FakePlatform, Job, Post  # noqa: E402

STAMP = re.compile(r"<(\d+\.\d{6})>")
MESSAGES = [{"role": "user", "content": "benchmark 🚀"}]
WAIT = 600.0  # upper bound of one phase


# ----------------------------------------------------------------------------- the bare worker


def serve_bare() -> int:
    """``python -m worker_runtime`` with the bare relay in place of the runtime's handler."""
    import worker_runtime.serve.handler
    from worker_runtime.__main__ import main

    worker_runtime.serve.handler.make_handler = bare_make_handler  # type: ignore[assignment]
    return main([])


# ----------------------------------------------------------------------------- workers


def worker_cpu(pid: int, engine_pid: int) -> float:
    """CPU seconds of worker ``pid`` and its descendants, the engine's subtree left out."""
    root = psutil.Process(pid)
    skip: set[int] = set()
    if engine_pid:
        try:
            engine = psutil.Process(engine_pid)
            skip = {engine_pid, *(p.pid for p in engine.children(recursive=True))}
        except psutil.NoSuchProcess:
            pass
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        if proc.pid in skip:
            continue
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


class LightPlatform(FakePlatform):
    """The fake job API doing the least per POST (bodies are parsed after the phase): at high K the
    fake, not the worker, would otherwise set the pace."""

    async def _read_post(self, request: Any) -> tuple[Job | None, Post]:
        raw = await request.text()
        return self.jobs.get(request.match_info["job"]), Post(time.monotonic(), {}, {}, raw)


def parse_bodies(job: Job) -> None:
    for post in [*job.stream, job.result]:
        if post is not None and isinstance(post.body, str):
            post.body = json.loads(post.body)


def serve_platform(conn: Connection) -> None:
    """A fake job API in a process of its own (its own GIL), driven through ``conn``."""
    api = LightPlatform().start()
    while True:
        cmd, arg = conn.recv()
        if cmd == "env":
            conn.send(api.env(arg))
        elif cmd == "takes":
            conn.send(len(api.takes))
        elif cmd == "submit":
            conn.send(api.submit_all(arg[0], stream_delay=arg[1]))
        elif cmd == "collect":
            for job_id in arg:
                api.wait_result(job_id, WAIT)
            conn.send([api.jobs.pop(job_id) for job_id in arg])
        else:
            api.close()
            conn.send(None)
            return


class RemotePlatform:
    """The parent's handle on a ``serve_platform`` process."""

    def __init__(self) -> None:
        self.conn, child = multiprocessing.get_context("spawn").Pipe()
        self.proc = multiprocessing.get_context("spawn").Process(target=serve_platform, args=(child,))
        self.proc.start()

    def call(self, cmd: str, arg: Any = None) -> Any:
        self.conn.send((cmd, arg))
        return self.conn.recv()

    def close(self) -> None:
        if self.proc.is_alive():
            self.call("close")
        self.proc.join(10)


@dataclass
class Worker:
    name: str
    api: RemotePlatform
    proc: subprocess.Popen[bytes]
    log: Path
    engine_pid: int = 0

    def cpu(self) -> float:
        return worker_cpu(self.proc.pid, self.engine_pid)

    def stop(self, keep_log: bool = False) -> None:
        stop_worker_process(self.name, self.proc, self.log, keep_log, self.api.close)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, a benchmark worker."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def stop_worker_process(
    name: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    keep_log: bool,
    then: Callable[[], object] | None = None,
) -> None:
    """Stop a benchmark worker (stop_process), run ``then()``, and drop its folder unless kept."""
    stop_process(proc)
    if then is not None:
        then()
    if keep_log:
        print(f"worker {name}'s log: {log}")
    else:
        shutil.rmtree(log.parent, ignore_errors=True)


def worker_env(
    platform_env: dict[str, str], tmp: Path, model: str, concurrency: int, tokens: int, rate: float
) -> dict[str, str]:
    """A benchmark worker's environment: the fake job API's variables (if any), the engine stand-in
    answering ``tokens`` stamped tokens at ``rate`` tokens/s, everything else of this shell's but FD_*
    and RUNPOD_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FD_", "RUNPOD_"))}
    env.update(platform_env)
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests" / "engine_standin")]),
        PYTHONUNBUFFERED="1",
        HOME=str(tmp),
        MODEL=model,
        MAX_CONCURRENCY=str(concurrency),
        FD_LOG_DIR=str(tmp / "fdlog"),
        FD_STANDIN_LOAD_DELAY="0",
        FD_STANDIN_TOKEN_DELAY=str(1.0 / rate),
        FD_STANDIN_ANSWER_TOKENS=str(tokens),
        FD_STANDIN_STAMP_TOKENS="1",
        # The SDK's host checks test the machine, not the worker.
        RUNPOD_SKIP_AUTO_SYSTEM_CHECKS="true",
        RUNPOD_SKIP_GPU_CHECK="true",
    )
    return env


def worker_command(bare: bool) -> list[str]:
    """``python -m worker_runtime``, or the same with the bare relay as its handler."""
    if bare:
        return [sys.executable, str(Path(__file__).resolve()), "--serve-bare"]
    return [sys.executable, "-m", "worker_runtime"]


def spawn_worker(cmd: list[str], env: dict[str, str], tmp: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """``cmd`` run from the repository with ``env``, its output in ``tmp/worker.log``."""
    log = tmp / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def wait_started(
    ready: Callable[[], object],
    proc: subprocess.Popen[bytes],
    log: Path,
    what: str,
    timeout: float,
    poll: float = 0.05,
) -> str:
    """Poll ``ready()`` until it is true and return the log's text; a process that ends first, or the
    timeout, ends the benchmark with the log's tail."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start:\n{log.read_text()[-4000:]}")
        time.sleep(poll)
    return log.read_text(errors="replace")


def start_worker(name: str, bare: bool, args: argparse.Namespace) -> Worker:
    api = RemotePlatform()
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    platform_env = api.call("env", f"bench-{name}")
    env = worker_env(platform_env, tmp, "bench-model", max(args.k), args.tokens, args.rate)
    # The same SDK log level for both workers (at DEBUG the SDK prints every output twice).
    env["RUNPOD_LOG_LEVEL"] = args.sdk_log_level
    proc, log = spawn_worker(worker_command(bare), env, tmp)
    return Worker(name, api, proc, log)


def wait_ready(worker: Worker, timeout: float = 120.0) -> None:
    text = wait_started(
        lambda: worker.api.call("takes"), worker.proc, worker.log, f"worker {worker.name}", timeout
    )
    match = re.search(r"^engine pid (\d+)", text, re.M)
    worker.engine_pid = int(match.group(1)) if match else 0


# ----------------------------------------------------------------------------- one phase


@dataclass
class Sample:
    """What one (handler, route, K) phase measured, pooled over repeats."""

    tokens: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    posts: int = 0
    jobs: int = 0
    cut: int = 0
    failed: list[str] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    job_time: list[float] = field(default_factory=list)


def job_input(route: str, tokens: int, i: int) -> dict[str, Any]:
    if route == "openai":
        body = {"model": "bench-model", "messages": MESSAGES, "max_tokens": tokens, "stream": True}
        return {"openai_route": "/v1/chat/completions", "openai_input": body}
    return {"messages": MESSAGES, "stream": True, "sampling_params": {"max_tokens": tokens}}


def post_text(output: Any) -> str:
    return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)


def check_job(job: Job, tokens: int, out: Sample) -> None:
    """Per-token delays of one job; counts cut events; records a failure for an error or a lost token."""
    parse_bodies(job)
    if job.result is None or not isinstance(job.result.body, dict) or "error" in job.result.body:
        body = None if job.result is None else job.result.body
        out.failed.append(f"{job.id}: {str(body)[:300]}")
        return
    assert job.taken_at is not None
    stamps: list[float] = []
    text = ""
    for post in job.stream:
        piece = post_text(post.body.get("output"))
        if isinstance(post.body.get("output"), str) and not piece.endswith("\n\n"):
            out.cut += 1  # this yield ends inside an event
        before = len(stamps)
        start = max(0, len(text) - 40)  # a stamp cut by the previous yield completes here
        text += piece
        for m in STAMP.finditer(text, start):
            if m.end() > len(text) - len(piece):
                stamps.append(float(m.group(1)))
                out.delays.append(post.at - stamps[-1])
        if before == 0 and stamps:
            out.ttft.append(post.at - job.taken_at)
    if len(stamps) != tokens or stamps != sorted(set(stamps)):
        out.failed.append(f"{job.id}: {len(stamps)} of {tokens} tokens delivered (or out of order)")
    out.tokens += len(stamps)
    out.posts += len(job.stream)
    out.jobs += 1
    out.job_time.append(job.result.at - job.taken_at)


def run_phase(workers: list[Worker], route: str, k: int, args: argparse.Namespace, out: list[Sample]) -> None:
    """K streams to each worker at once: whatever else loads the machine loads them alike."""
    inputs = [job_input(route, args.tokens, i) for i in range(k)]
    cpu0 = [w.cpu() for w in workers]
    t0 = time.monotonic()
    ids = [w.api.call("submit", (inputs, args.post_cost)) for w in workers]
    done = [w.api.call("collect", job_ids) for w, job_ids in zip(workers, ids, strict=True)]
    for w, jobs, c0, sample in zip(workers, done, cpu0, out, strict=True):
        sample.wall += max(j.result.at for j in jobs if j.result is not None) - t0
        sample.cpu += w.cpu() - c0
        for job in jobs:
            check_job(job, args.tokens, sample)


# ----------------------------------------------------------------------------- report


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(name: str, s: Sample) -> str:
    ms = [1000 * pct(s.delays, q) for q in (0.5, 0.9, 0.99, 1.0)]
    return (
        f"  {name:<5} {s.tokens / s.wall:8.0f} {ms[0]:7.1f} {ms[1]:7.1f} {ms[2]:7.1f} {ms[3]:7.1f}"
        f" {1000 * pct(s.ttft, 0.5):7.1f} {1000 * pct(s.ttft, 0.99):7.1f}"
        f" {pct(s.job_time, 0.5):6.2f} {pct(s.job_time, 0.99):6.2f}"
        f" {s.posts / max(1, s.jobs):7.1f} {s.tokens / max(1, s.posts):6.2f}"
        f" {1e6 * s.cpu / max(1, s.tokens):8.1f} {s.cut:6d}"
    )


HEADER = (
    "  handler  tok/s   delay ms: p50     p90     p99     max  ttft ms: p50  p99  job s: p50  p99"
    "  POST/job tok/POST CPU us/tok  cut"
)


def ratios(ours: Sample, bare: Sample) -> str:
    def r(a: float, b: float) -> str:
        return f"{a / b:.3f}" if b else "n/a"

    return (
        "  ratio vs bare: CPU/token "
        + r(ours.cpu / max(1, ours.tokens), bare.cpu / max(1, bare.tokens))
        + " (<=1.05)  delay p50 "
        + r(pct(ours.delays, 0.5), pct(bare.delays, 0.5))
        + " p99 "
        + r(pct(ours.delays, 0.99), pct(bare.delays, 0.99))
        + " (<=1)  job p99 "
        + r(pct(ours.job_time, 0.99), pct(bare.job_time, 0.99))
        + " (<=1)  throughput "
        + r(ours.tokens / ours.wall, bare.tokens / bare.wall)
        + " (>=1)  POSTs "
        + r(ours.posts, bare.posts)
    )


def load_options(description: str | None) -> argparse.ArgumentParser:
    """The options of a streaming load (K, tokens, rate, the platform's POST cost, repeats, the SDK's
    log level), shared with bench_lb.py; ``args.k`` is then a comma-separated string."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--k", default="8,64,128,256", help="concurrent streams per phase, comma-separated")
    parser.add_argument("--tokens", type=int, default=256, help="tokens per stream")
    parser.add_argument("--rate", type=float, default=200.0, help="tokens/s of each stream")
    parser.add_argument(
        "--post-cost", type=float, default=0.02, help="seconds the platform takes per stream POST"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each phase per worker (pooled)")
    parser.add_argument(
        "--sdk-log-level",
        default="INFO",
        help="RUNPOD_LOG_LEVEL of platform workers (default INFO, the runtime's default; DEBUG is the SDK's)",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = load_options(__doc__)
    parser.add_argument("--routes", default="openai,native", help="openai, native or both")
    parser.add_argument(
        "--alternate",
        dest="together",
        action="store_false",
        help="run the two workers one after the other (default: both at once, so load hits both alike)",
    )
    parser.add_argument(
        "--aa",
        action="store_true",
        help="A/A run: the runtime's handler in both slots, to see the spread this machine gives",
    )
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.k = [int(x) for x in str(args.k).split(",") if x.strip()]
    args.routes = [r for r in args.routes.split(",") if r.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        return serve_bare()
    workers = {"ours": start_worker("ours", False, args), "bare": start_worker("bare", not args.aa, args)}
    failures: list[str] = []
    try:
        for w in workers.values():
            wait_ready(w)
        print(
            f"platform mode, {args.tokens} tokens per stream at {args.rate:g} tok/s, "
            f"{args.post_cost * 1000:g} ms per stream POST, {args.repeat} run(s) per phase; "
            f"worker pids: ours {workers['ours'].proc.pid}, bare {workers['bare'].proc.pid}"
            + (" (A/A: the 'bare' slot runs the runtime's handler too)" if args.aa else ""),
            flush=True,
        )
        for k in args.k:
            for route in args.routes:
                samples = {"ours": Sample(), "bare": Sample()}
                for rep in range(args.repeat):
                    names = ["ours", "bare"] if rep % 2 == 0 else ["bare", "ours"]  # who goes first
                    if args.together:
                        run_phase([workers[n] for n in names], route, k, args, [samples[n] for n in names])
                        continue
                    for name in names:
                        run_phase([workers[name]], route, k, args, [samples[name]])
                print(f"K={k} {route} streams", flush=True)
                print(HEADER)
                for name, s in samples.items():
                    print(row(name, s))
                    failures += [f"{name} K={k} {route}: {f}" for f in s.failed]
                print(ratios(samples["ours"], samples["bare"]), flush=True)
    finally:
        for w in workers.values():
            w.stop(keep_log=bool(failures) or sys.exc_info()[0] is not None)
    return failed(failures, "jobs")


def failed(failures: list[str], what: str) -> int:
    """Exit status of a benchmark: 1, listing the first failures, when there are any."""
    if not failures:
        return 0
    print(f"{len(failures)} failed or incomplete {what}:", *failures[:20], sep="\n  ")
    return 1


if __name__ == "__main__":
    sys.exit(main())
