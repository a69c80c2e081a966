"""The worker notices that the engine is ready within 0.25 s of its port opening, however long it loads.

FastDeploy opens its HTTP port only once the model is loaded, often after minutes. The health poll runs on a
fake clock here, so a one-minute load takes no time and the check does not depend on the machine's speed."""

from __future__ import annotations

import itertools
import types
from pathlib import Path

import pytest

from worker_runtime.engine import supervisor as supervisor_module
from worker_runtime.engine.supervisor import Supervisor

LOAD_SECONDS = 60.0
CONNECT_COST = 0.002  # a refused connection to loopback


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class NeverDies:
    """Stands for ``Supervisor.died``: the engine stays alive; waiting only moves the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def is_set(self) -> bool:
        return False

    def wait(self, timeout: float | None = None) -> bool:
        self.clock.now += timeout or 0.0
        return False


@pytest.mark.parametrize("opens_at", [LOAD_SECONDS, LOAD_SECONDS + 0.9, LOAD_SECONDS + 1.7, 3.3])
def test_ready_within_a_quarter_second_of_the_port_opening(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, opens_at: float
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(supervisor_module, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    sup = Supervisor(["unused"], {}, "http://127.0.0.1:9/health", str(tmp_path))
    polls: list[float] = []

    def healthy(timeout: float = 2.0) -> bool:
        polls.append(clock.now)
        clock.now += CONNECT_COST
        return clock.now >= opens_at

    sup.died = NeverDies(clock)  # type: ignore[assignment]
    sup.healthy = healthy  # type: ignore[method-assign]
    took = sup.wait_ready(timeout=600.0)
    assert took - opens_at <= 0.25, f"ready {took - opens_at:.2f} s after the port opened"
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert max(gaps) <= 0.25, f"the health poll paused {max(gaps):.2f} s"
    assert len(polls) <= opens_at / 0.1 + 2  # and it does not spin
