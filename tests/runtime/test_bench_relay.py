"""bench/bench_relay.py runs (its handlers through the SDK's real job loop) and checks what it measures."""

from __future__ import annotations

import json
import sys

from .conftest import REPO, run_bench

sys.path[:0] = [str(REPO / "bench")]

import bench_relay  # noqa: E402


def test_bench_relay_runs_every_handler_and_route_and_exits_0() -> None:
    args = ["--tokens", "12", "--jobs", "2", "--rounds", "2", "--per-read", "1,5", "--cut"]
    out = run_bench("bench_relay.py", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith(("openai ", "native "))]
    assert {(r[0], r[1], r[2]) for r in rows} == {
        (route, per_read, name)
        for route in ("openai", "native")
        for per_read in ("1", "5")
        for name in ("ours", "bare") + (("objects",) if route == "native" else ())
    }


def test_a_lost_or_reordered_token_is_seen() -> None:
    events, text = bench_relay.chat_stream(6)
    sse = "".join(e.decode() for e in events)
    posts = [json.dumps({"output": sse}), json.dumps({"output": []})]
    assert bench_relay.delivered_text(posts) == text
    lost = sse.replace(' wörld"', '"', 1)
    assert bench_relay.delivered_text([json.dumps({"output": lost}), posts[-1]]) != text
    chunk = {"choices": [{"index": 0, "delta": {"content": "x"}}]}
    native = [json.dumps({"output": chunk}), posts[-1]]
    assert bench_relay.delivered_text(native) == "x"
