"""Leave no engine process behind: ``python -m worker_runtime.engine.reaper WORKER_PID ENGINE_PID``.

FastDeploy starts its GPU workers and cache managers in sessions of their own (``os.setsid``), so a
signal to the engine's process group does not reach them, and only a clean exit of the API server stops
them (a ``weakref.finalize``): not a SIGKILL, not a SIGTERM during loading, not a crash. Outside a
container such orphans keep their GPU memory.

This watchdog runs beside the worker, in its own session (a Ctrl-C or a SIGTERM to the worker's group
does not reach it). Every ``POLL_SECONDS`` it reads ``/proc`` and records each descendant of the engine
with its start time (so that a reused pid is never signalled); a recorded process keeps being tracked
after its parent dies and it is re-parented. When the engine or the worker is gone, however they ended
(the worker SIGKILLed included), it stops every recorded process still alive: SIGTERM, then SIGKILL after
``GRACE_SECONDS``, and exits. Linux only; elsewhere (no ``/proc``) it exits at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

POLL_SECONDS = 0.2
GRACE_SECONDS = 5.0
PROC = "/proc"


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of ``pid``, or None when it is gone."""
    try:
        with open(f"{PROC}/{pid}/stat", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return int(fields[1]), fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _table() -> dict[int, tuple[int, str, int]]:
    out: dict[int, tuple[int, str, int]] = {}
    with contextlib.suppress(OSError):
        for name in os.listdir(PROC):
            if name.isdigit():
                info = _stat(int(name))
                if info is not None:
                    out[int(name)] = info
    return out


def alive(pid: int, start: int | None = None) -> bool:
    """Whether ``pid`` runs (a zombie does not), and is the process that started at ``start``."""
    info = _stat(pid)
    return info is not None and info[1] != "Z" and (start is None or info[2] == start)


class Tracker:
    """The engine's descendants seen so far: pid -> start time."""

    def __init__(self, engine_pid: int) -> None:
        self.engine_pid = engine_pid
        self.tracked: dict[int, int] = {}

    def poll(self) -> None:
        table = _table()
        engine = table.get(self.engine_pid)
        if engine is not None and engine[1] != "Z":
            self.tracked.setdefault(self.engine_pid, engine[2])
        roots = {p for p, start in self.tracked.items() if p in table and table[p][2] == start}
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        todo = list(roots)
        while todo:
            pid = todo.pop()
            for child in children.get(pid, ()):
                if child not in self.tracked:
                    self.tracked[child] = table[child][2]
                    todo.append(child)
        self.tracked = {p: s for p, s in self.tracked.items() if p in table and table[p][2] == s}

    def living(self) -> list[int]:
        return [p for p, s in self.tracked.items() if alive(p, s)]

    def stop_all(self, grace: float = GRACE_SECONDS) -> list[int]:
        """SIGTERM every tracked process still alive, then SIGKILL what outlives ``grace``."""
        self.poll()
        left = self.living()
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.living() and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in self.living():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return left


def watch(worker_pid: int, engine_pid: int) -> int:
    if not os.path.isdir(PROC):
        return 0
    worker = _stat(worker_pid)
    tracker = Tracker(engine_pid)
    while True:
        tracker.poll()
        worker_gone = worker is None or not alive(worker_pid, worker[2])
        if worker_gone or not alive(engine_pid):
            break
        time.sleep(POLL_SECONDS)
    leftovers = [p for p in tracker.living() if p != engine_pid]
    tracker.stop_all()
    if leftovers:
        print(f"reaper: stopped {len(leftovers)} leftover engine process(es): {leftovers}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    # Own session already (the worker starts it so); stray terminal signals must not end the watch early.
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    if len(argv) != 2 or not all(a.isdigit() for a in argv):
        print("usage: python -m worker_runtime.engine.reaper WORKER_PID ENGINE_PID", file=sys.stderr)
        return 2
    return watch(int(argv[0]), int(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
