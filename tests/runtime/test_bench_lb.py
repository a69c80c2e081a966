"""bench/bench_lb.py runs (every configuration, tiny K and stream) and checks what it measures."""

from __future__ import annotations

import sys

import pytest

from .conftest import REPO, run_bench

sys.path[:0] = [str(REPO / "bench")]

import bench_lb  # noqa: E402


@pytest.mark.slow
def test_bench_lb_runs_every_configuration_and_exits_0() -> None:
    args = ["--k", "2,3", "--tokens", "6", "--rate", "400", "--post-cost", "0.005"]
    out = run_bench("bench_lb.py", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line.split()[0] for line in out.stdout.splitlines() if line.startswith("  ") and "." in line]
    assert [r for r in rows if r in bench_lb.CONFIGS] == list(bench_lb.CONFIGS) * 2
    assert out.stdout.count("lb/direct: delay p50") == 2 and out.stdout.count("queue/lb: delay p50") == 2


def _stream(tokens: list[str]) -> bytes:
    events = [f'data: {{"choices":[{{"delta":{{"content":"{t}"}}}}]}}\n\n' for t in tokens]
    return ("".join(events) + "data: [DONE]\n\n").encode()


def test_a_lost_reordered_or_unfinished_stream_is_a_failure() -> None:
    stamps = ["a<1.000001>", "b<1.000002>", "c<1.000003>"]
    data = _stream(stamps)
    good = bench_lb.Sample()
    bench_lb.check_stream(data, [(len(data) // 2, 1.5), (len(data), 2.0)], 3, good)
    assert good.failed == [] and good.tokens == 3 and len(good.gaps) == 2
    assert all(d > 0 for d in good.delays)
    for bad_data in (
        _stream(stamps[:2]),
        _stream([stamps[1], stamps[0], stamps[2]]),
        data[: -len(b"[DONE]\n\n")],
    ):
        bad = bench_lb.Sample()
        bench_lb.check_stream(bad_data, [(len(bad_data), 2.0)], 3, bad)
        assert bad.failed, bad_data
