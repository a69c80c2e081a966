"""Platform mode (the RunPod SDK's job loop, fake job API) against FastDeploy 2.5's behaviours: a job
stopped by the platform stops the engine's generation, and the SDK's host checks run and are obeyed."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest

from .conftest import (
    RuntimeProcess,
    decoding_stops,
    fitness_env,
    host_fails_system_checks,
    process_alive,
    runtime_env,
    wait_until,
)
from .fake_platform import FakePlatform
from .test_platform_mode import Worker, output_of, running_worker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def slow() -> Iterator[Worker]:
    with running_worker(
        "slow", FD_STANDIN_TOKEN_DELAY="0.01", FD_STANDIN_ANSWER_TOKENS="600", MAX_CONCURRENCY="2"
    ) as worker:
        yield worker


@pytest.mark.parametrize(
    "job_input",
    [
        {"prompt": "long", "stream": True, "sampling_params": {"max_tokens": 600}},
        {"prompt": "long", "sampling_params": {"max_tokens": 600}},
        {
            "openai_route": "/v1/completions",
            "openai_input": {"prompt": "long", "stream": True, "max_tokens": 600},
        },
    ],
    ids=["native-stream", "native", "openai-stream"],
)
def test_platform_job_stop_stops_generation(slow: Worker, job_input: dict) -> None:
    rt = slow.rt
    before = rt.engine_metrics()
    job_id = slow.submit(job_input)
    wait_until(
        lambda: (
            rt.engine_metrics()["standin_generated_tokens_total"]
            > before["standin_generated_tokens_total"] + 10
        ),
        "decoding to start",
    )
    slow.api.request_stop(job_id)
    wait_until(
        lambda: (
            rt.engine_metrics()["standin_client_disconnects_total"]
            > before["standin_client_disconnects_total"]
        ),
        "the engine to see its client leave",
    )
    decoding_stops(rt, before["standin_unread_tokens_total"])
    assert slow.api.jobs[job_id].result is None  # stopped, not finished
    (answer,) = output_of(slow.run({"prompt": "next", "sampling_params": {"max_tokens": 3}}))
    assert answer["usage"]["completion_tokens"] == 3


def test_platform_workers_run_the_sdk_host_checks(slow: Worker) -> None:
    env = fitness_env()
    if host_fails_system_checks() is None:
        assert "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS" not in env
        slow.rt.wait_output("Disk space check passed")
        assert "Memory check passed" in slow.rt.output or "memory" in slow.rt.output.lower()
    else:
        assert env["RUNPOD_SKIP_AUTO_SYSTEM_CHECKS"] == "true"


def test_a_failed_host_check_ends_the_worker_and_its_engine() -> None:
    """The checks on, on any machine: disk is the one made to fail (less free than required, what a
    container disk sized without 10% headroom gives after a download); memory passes (0 GB needed);
    the network check, after the disk one, never runs."""
    api = FakePlatform().start()
    env = runtime_env(RUNPOD_MIN_DISK_PERCENT="100.1", RUNPOD_MIN_MEMORY_GB="0", RUNPOD_SKIP_GPU_CHECK="true")
    env.update(api.env("worker-fit"))
    env["HOME"] = tempfile.mkdtemp(prefix="home-")
    rt = RuntimeProcess([], env, None)
    try:
        assert rt.wait_exit() == 1, rt.output
        assert "Insufficient disk space" in rt.output, rt.output
        engine = rt.engine_pid()
        assert engine is not None
        gpu = rt.gpu_worker_pid()
        wait_until(lambda: not process_alive(engine) and not process_alive(gpu), "the engine tree to stop")
    finally:
        rt.stop()
        api.close()
