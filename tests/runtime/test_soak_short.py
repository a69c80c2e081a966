"""The soak's short form: 2 minutes at K = 32 with every fault injected (bench/soak.py).

It fails on a lost token, a job failed for no injected reason, a stuck job or a leaked task, job or
engine request, never on a timing: the run is too short for the RSS verdict, and a slow machine only
makes fewer jobs.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import REPO

HANG = 900.0  # only so that a hung run ends; the run itself takes about 2 minutes


@pytest.mark.slow
def test_soak_short_form_loses_no_token_and_leaks_nothing() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "soak.py"), "--minutes", "2", "--k", "32", "--every", "0.5"],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    summary = json.loads(next(line for line in out.splitlines() if line.startswith("summary: "))[9:])
    # Every kind of fault was injected and met (a run without faults would prove little).
    for fault in ("stream 5xx", "stream slow", "stream drop"):
        assert summary["faults"].get(fault, 0) > 0, summary
    assert sum(n for f, n in summary["faults"].items() if f.startswith("take ")) > 0, summary
    outcomes = summary["outcomes"]
    assert outcomes.get("engine error", 0) == summary["injected"]["engine error"] > 0, summary
    assert 0 < outcomes.get("cancelled", 0) <= summary["injected"]["cancel"], summary
    assert set(outcomes) <= {"ok", "engine error", "cancelled"}, summary
    assert summary["stuck"] == 0 and summary["leaked_tasks"] == {} and summary["in_flight"] == 0, summary
    assert summary["engine_running"] == 0, summary
