"""The FastDeploy child process: spawn, wait for /health, show its logs, stop it, watch for its death.

Thread-based on purpose: it must work both under the RunPod SDK's own event loop and under the
local server's, and its waits must not depend on either.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from worker_runtime.engine.reaper import Tracker

DEFAULT_LOG_DIR = "/tmp/fastdeploy-log"
# workerlog.N holds load and kernel errors, so it comes first.
LOG_PATTERNS = ("workerlog.*", "fastdeploy.log", "api_server.log", "console.log", "*.log")
# Longest pause between /health polls while the engine loads: the port opens only once the model is
# loaded, and the worker should report ready within 0.25 s of that; a refused loopback connect is cheap.
READY_POLL_MAX = 0.2


class EngineStartError(RuntimeError):
    """The engine exited or timed out before it became ready; the message carries its log tail."""


def log_tail(log_dir: str, lines: int = 30, max_files: int = 4) -> str:
    """The last lines of FastDeploy's log files, most telling first."""
    root = Path(log_dir)
    seen: list[Path] = []
    for pattern in LOG_PATTERNS:
        for path in sorted(root.glob(pattern)):
            if path.is_file() and path not in seen:
                seen.append(path)
    parts = []
    for path in seen[:max_files]:
        try:
            text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        except OSError as exc:
            text = [f"(unreadable: {exc})"]
        parts.append(f"----- {path} (last {len(text)} lines) -----\n" + "\n".join(text))
    return "\n".join(parts) if parts else f"(no log files in {log_dir})"


class Supervisor:
    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        health_url: str,
        log_dir: str,
        *,
        stop_grace: float = 10.0,
    ) -> None:
        self.argv = list(argv)
        self.env = env
        self.health_url = health_url
        self.log_dir = log_dir
        self.stop_grace = stop_grace
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self.stopping = False
        self.died = threading.Event()
        self._on_death: list[Callable[[int], None]] = []
        self._lock = threading.Lock()
        self.reaper: subprocess.Popen[bytes] | None = None
        # /health is on loopback: never through HTTP(S)_PROXY from the endpoint's environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def start(self) -> None:
        Path(self.log_dir).mkdir(parents=True, exist_ok=True)
        # Own process group, so a Ctrl-C to the worker's group reaches the worker only; the engine gets
        # SIGTERM if the worker dies, however (the parent-death signal, Linux).
        self.proc = subprocess.Popen(
            self.argv, env=self.env, start_new_session=True, preexec_fn=_parent_death_signal()
        )
        threading.Thread(target=self._watch, name="engine-death-watch", daemon=True).start()
        self.reaper = start_reaper(self.proc.pid)

    def _watch(self) -> None:
        assert self.proc is not None
        code = self.proc.wait()
        with self._lock:
            self.exit_code = code
            self.died.set()
            callbacks = list(self._on_death)
        if not self.stopping:
            for callback in callbacks:
                callback(code)

    def on_death(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(exit_code)`` from another thread if the engine dies unasked.

        A callback registered after the engine already died (unasked) is called at once, in its own
        thread: the death must never go unnoticed because it came before the registration.
        """
        with self._lock:
            self._on_death.append(callback)
            already = self.died.is_set()
        if already and not self.stopping:
            code = self.exit_code if self.exit_code is not None else -1
            threading.Thread(target=callback, args=(code,), name="engine-death", daemon=True).start()

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            with self._opener.open(self.health_url, timeout=timeout) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_ready(self, timeout: float, interval: float = 0.1) -> float:
        """Poll /health until 200; raise EngineStartError on exit or timeout. Returns seconds taken."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            if self.died.is_set():
                raise EngineStartError(
                    f"FastDeploy engine exited with code {self.exit_code} during startup.\n"
                    + log_tail(self.log_dir)
                )
            if self.healthy(timeout=min(2.0, max(0.1, deadline - time.monotonic()))):
                return time.monotonic() - started
            if time.monotonic() >= deadline:
                raise EngineStartError(
                    f"FastDeploy engine not ready after {timeout:g} s (ENGINE_STARTUP_TIMEOUT).\n"
                    + log_tail(self.log_dir)
                )
            self.died.wait(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 1.5, READY_POLL_MAX)

    def stop(self, grace: float | None = None, leftovers_grace: float = 2.0) -> int | None:
        """SIGTERM the engine's process group, then SIGKILL after ``grace`` (``stop_grace``) seconds;
        then what is left of its process tree, after ``leftovers_grace`` seconds."""
        grace = self.stop_grace if grace is None else grace
        self.stopping = True
        proc = self.proc
        if proc is None or self.died.is_set():
            return self.exit_code
        # The whole tree, read before anything dies: GPU workers in sessions of their own are out of
        # the group's reach, and once the server is gone they are no longer its children.
        tree = Tracker(proc.pid)
        tree.poll()
        _signal_group(proc.pid, signal.SIGTERM)
        if not self.died.wait(grace):
            _signal_group(proc.pid, signal.SIGKILL)
            self.died.wait(5.0)
        else:
            _signal_group(proc.pid, signal.SIGKILL)  # leftovers of the group, if any
        tree.stop_all(grace=leftovers_grace)  # and of the tree
        return self.exit_code


PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None] | None:
    """For the engine child, run before exec: SIGTERM when the worker dies (prctl PR_SET_PDEATHSIG;
    Linux only). libc is loaded here, in the parent, so the child only makes the call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_signal() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    return set_signal


def start_reaper(engine_pid: int) -> subprocess.Popen[bytes] | None:
    """The watchdog that stops every engine descendant left once the engine or the worker is gone
    (``reaper.py``): GPU workers run in sessions of their own, which no process-group signal reaches."""
    if not os.path.isdir("/proc"):
        return None
    package_parent = Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(package_parent), env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "worker_runtime.engine.reaper", str(os.getpid()), str(engine_pid)],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def shm_warning(path: str = "/dev/shm", minimum: int = 1 << 30) -> str | None:
    """A warning when shared memory is smaller than the engine needs (Docker's default is 64 MB)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    size = st.f_frsize * st.f_blocks
    if size < minimum:
        return (
            f"WARNING: {path} is {size / (1 << 20):.0f} MiB; FastDeploy needs shared memory "
            f"(run the container with --shm-size=16g or --ipc=host)."
        )
    return None
