"""Shared helpers: start the real runtime as a subprocess against the engine stand-in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from worker_runtime.config.catalog import DEFAULT_RELEASE
from worker_runtime.engine.ports import free_ports

REPO = Path(__file__).resolve().parents[2]
STANDIN = REPO / "tests" / "engine_standin"
WAIT = 30.0  # upper bound of every wait in these tests


class RuntimeProcess:
    """``python -m worker_runtime ...`` with its output captured line by line."""

    def __init__(self, args: list[str], env: dict[str, str], port: int | None) -> None:
        self.port = port
        self.log_dir = env["FD_LOG_DIR"]
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker_runtime", *args],
            cwd=str(REPO),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_output(self, text: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the pump read the last lines
                if text in self.output:
                    return
                raise AssertionError(
                    f"runtime exited ({self.proc.returncode}) before {text!r}:\n{self.output}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout} s:\n{self.output}")
            time.sleep(0.05)

    def wait_exit(self, timeout: float = WAIT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"runtime still running after {timeout} s:\n{self.output}") from None

    def engine_pid(self) -> int | None:
        for line in self.output.splitlines():
            if line.startswith("engine pid "):
                return int(line.split()[2].rstrip(","))
        return None

    def engine_port(self) -> int:
        """The engine's HTTP port, from the argv the runtime printed."""
        self.wait_output("Starting FastDeploy")
        for line in self.output.splitlines():
            if line.startswith("Starting FastDeploy"):
                words = line.split()
                return int(words[words.index("--port") + 1])
        raise AssertionError("no engine command line in the output")

    def engine_argv(self) -> list[str]:
        self.wait_output("Starting FastDeploy")
        line = next(x for x in self.output.splitlines() if x.startswith("Starting FastDeploy"))
        return line.split(": ", 1)[1].split()

    def engine_metrics(self) -> dict[str, float]:
        """The stand-in's /metrics counters (read on the engine's own port)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.engine_port()}/metrics", timeout=WAIT) as resp:
            text = resp.read().decode()
        out = {}
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
        return out

    def gpu_worker_pid(self, timeout: float = WAIT) -> int:
        """The pid of the stand-in's "GPU worker" (its own session), once it has started."""
        path = os.path.join(self.log_dir, "standin-gpu-worker.pid")
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            assert time.monotonic() < deadline, f"no GPU worker started:\n{self.output}"
            time.sleep(0.05)
        with open(path) as f:
            return int(f.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def run_bench(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python bench/SCRIPT ARGS`` from the repository, its output captured (smoke tests)."""
    return subprocess.run(
        [sys.executable, f"bench/{script}", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def runtime_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FD_", "RUNPOD_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(STANDIN)])
    env["MODEL"] = "stand-in/model"
    env["FD_LOG_DIR"] = tempfile.mkdtemp(prefix="fdlog-")
    env["FD_STANDIN_LOAD_DELAY"] = "0.2"
    env["FD_STANDIN_GPU_WORKER_LIFE"] = "300"  # an orphan of a failed test does not live for ever
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def start_local(**extra: str) -> RuntimeProcess:
    (port,) = free_ports(1)
    return RuntimeProcess(["--local", "--host", "127.0.0.1", "--port", str(port)], runtime_env(**extra), port)


def contract_releases() -> list[str]:
    """The releases the runtime's contract tests run against: the default release and every newer entry
    of the flag table (an unreleased branch such as release/2.6), each with the stand-in in its mode."""
    table = json.loads((REPO / "worker_runtime" / "config" / "engine_flags.json").read_text(encoding="utf-8"))
    key = lambda v: tuple(int(p) for p in v.split("."))  # noqa: E731
    return sorted((v for v in table["releases"] if key(v) >= key(DEFAULT_RELEASE)), key=key)


@pytest.fixture
def engine_release() -> str:
    """The FastDeploy release of the runtimes ``local_runtime`` starts (a module may parametrize it)."""
    return DEFAULT_RELEASE


LB_READY = "Ready: health check answers 200"
LOCAL_READY = "Local RunPod-shaped endpoint"


def start_lb(**extra: str) -> RuntimeProcess:
    """A runtime serving a load-balancing endpoint (ENDPOINT_TYPE=load_balancer) on PORT (a free one
    unless given); the stand-in records every request it receives in ``requests.log`` of the log
    folder."""
    env = runtime_env(ENDPOINT_TYPE="load_balancer", **extra)
    env.setdefault("PORT", str(free_ports(1)[0]))
    env.setdefault("FD_STANDIN_REQUEST_LOG", os.path.join(env["FD_LOG_DIR"], "requests.log"))
    return RuntimeProcess([], env, int(env["PORT"]))


def served(runtime: RuntimeProcess, ready: str) -> Iterator[RuntimeProcess]:
    """A module's shared runtime (`yield from` it in a fixture): `runtime` once it prints `ready`;
    stopped after the module's tests, when it must exit 0."""
    runtime.wait_output(ready)
    yield runtime
    runtime.stop()
    assert runtime.wait_exit() == 0


def _factory(start: Any, ready: str) -> Iterator[Any]:
    """Factory: start a runtime with extra env (waiting for ``ready`` in its output unless told not
    to); every one started is stopped afterwards."""
    started: list[RuntimeProcess] = []

    def factory(wait_ready: bool = True, **extra: str) -> RuntimeProcess:
        rt = start(**extra)
        started.append(rt)
        if wait_ready:
            rt.wait_output(ready)
        return rt

    yield factory
    for rt in started:
        rt.stop()


@pytest.fixture
def local_runtime(engine_release: str) -> Iterator[Any]:
    """Factory of --local runtimes (see _factory) of FastDeploy release ``engine_release``, the stand-in
    in that release's mode."""
    release = {"FASTDEPLOY_VERSION": engine_release, "FD_STANDIN_RELEASE": engine_release}
    yield from _factory(lambda **extra: start_local(**{**release, **extra}), LOCAL_READY)


@pytest.fixture
def lb_runtime() -> Iterator[Any]:
    """Factory of load-balancing runtimes (see _factory)."""
    yield from _factory(start_lb, LB_READY)


def http(method: str, url: str, body: Any = None, timeout: float = WAIT) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", errors="replace")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs; a zombie awaiting its reaper counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def assert_process_ends(pid: int, detail: str = "", timeout: float = 5.0) -> None:
    """Wait up to ``timeout`` seconds for ``pid`` to end; fail with "engine left running" + detail."""
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        assert time.monotonic() < deadline, "engine left running" + detail
        time.sleep(0.05)


def listening_ports(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every IPv4/IPv6 TCP socket process ``pid`` listens on (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    out = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        try:
            with open(f"/proc/net/{table}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            addr_hex, port_hex = fields[1].split(":")
            if width == 8:
                addr = ".".join(str(b) for b in reversed(bytes.fromhex(addr_hex)))
            else:
                addr = "::" if set(addr_hex) == {"0"} else addr_hex
            out.add((addr, int(port_hex, 16)))
    return out


def wait_until(predicate: Any, what: str, timeout: float = WAIT) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def decoding_stops(rt: RuntimeProcess, unread_before: float = 0.0) -> None:
    """The engine decodes nothing any more: no request running, the token count stands still, and
    what it decoded for the client that left is a few tokens, not the rest of the answer."""
    wait_until(lambda: rt.engine_metrics()["fastdeploy:num_requests_running"] == 0, "decoding to stop")
    before = rt.engine_metrics()["standin_generated_tokens_total"]
    time.sleep(0.3)  # 30 token times
    after = rt.engine_metrics()
    assert after["standin_generated_tokens_total"] == before
    assert after["standin_unread_tokens_total"] - unread_before < 50, after


def host_fails_system_checks() -> str | None:
    """Why this machine would fail runpod 1.12's system fitness checks (rp_system_fitness.py, with its
    default thresholds: 10% of / free, 4 GB of memory available, 8.8.8.8:53 reachable), or None."""
    import shutil
    import socket

    usage = shutil.disk_usage("/")
    if usage.free * 100 < usage.total * 10:
        return f"/ is {usage.free * 100 / usage.total:.1f}% free"
    with open("/proc/meminfo") as f:
        fields = dict(line.split(":", 1) for line in f)
    available_gb = int(fields["MemAvailable"].split()[0]) / (1024 * 1024)
    if available_gb < 4.0:
        return f"{available_gb:.1f} GB of memory available"
    try:
        socket.create_connection(("8.8.8.8", 53), timeout=5).close()
    except OSError as exc:
        return f"8.8.8.8:53 unreachable ({exc})"
    return None


def fitness_env() -> dict[str, str]:
    """Environment for platform-mode workers: the SDK's system checks on where the host passes them.

    The GPU check stays off (no GPU, and its benchmark needs CuPy or torch)."""
    env = {"RUNPOD_SKIP_GPU_CHECK": "true"}
    reason = host_fails_system_checks()
    if reason is not None:
        print(f"\nSDK system fitness checks off: this machine would fail them ({reason})")
        env["RUNPOD_SKIP_AUTO_SYSTEM_CHECKS"] = "true"
    return env
