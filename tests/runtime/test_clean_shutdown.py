"""Stopping the worker prints no "Unclosed client session" / "Unclosed connector" warnings.

The engine session lives on the loop of the RunPod SDK (or of the local server), which knows nothing
of it; it must still be closed when that loop ends.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from .conftest import http
from .test_platform_mode import MESSAGES, output_of, start_worker

pytestmark = pytest.mark.integration
JOBS = (
    {"messages": MESSAGES, "stream": True, "sampling_params": {"max_tokens": 5}},
    {"openai_route": "/v1/chat/completions", "openai_input": {"messages": MESSAGES, "max_tokens": 5}},
)


def test_platform_worker_stops_without_unclosed_warnings() -> None:
    w = start_worker("shutdown")
    try:
        w.wait_taking()
        for job in JOBS:  # the engine session exists and holds pooled connections
            output_of(w.run(job))
        w.rt.proc.send_signal(signal.SIGTERM)
        assert w.rt.wait_exit() == 0, w.rt.output
    finally:
        w.rt.stop()
        w.api.close()
    assert "Unclosed" not in w.rt.output, w.rt.output
    assert "Task was destroyed" not in w.rt.output, w.rt.output


def test_local_worker_stops_without_unclosed_warnings(local_runtime: Any) -> None:
    rt = local_runtime()
    for job in JOBS:
        status, body = http("POST", rt.base + "/runsync", {"input": job})
        assert status == 200 and body["status"] == "COMPLETED", body
    rt.proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert rt.wait_exit() == 0, rt.output
    assert "Unclosed" not in rt.output, rt.output
