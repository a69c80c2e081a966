"""Run a built image locally (the docker CLI, so any `docker run` option can be passed) and its test jobs
against the container's RunPod-shaped local endpoint, or for a load-balancing image against its own HTTP
server (builder.verify.lb); the container is always removed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

import requests

from builder.verify.jobs import JobClient, TestJob
from builder.verify.lb import LbClient, run_lb_tests
from builder.verify.report import Progress, run_each, summary

WORKER_PORT = 8000
LOG_TAIL = 50


class LocalTestError(Exception):
    """The container could not be run or never became ready; the message says what to do."""


@dataclass(frozen=True)
class LocalRun:
    image: str
    docker_args: Sequence[str] = ()  # extra `docker run` options, as the user wrote them
    env: dict[str, str] | None = None  # passed by name (`-e KEY`): values stay out of the process list
    gpus: bool | None = None  # None: `--gpus all` when the host has NVIDIA GPUs
    ready_timeout: float = 1200.0


@dataclass(frozen=True)
class LbServing:
    """How a load-balancing image serves: its ports (PORT, PORT_HEALTH) and health path."""

    port: int
    health_port: int
    health_path: str
    model: str  # for the openai stream

    @property
    def ports(self) -> list[int]:
        return list(dict.fromkeys((self.port, self.health_port)))


def host_has_gpus() -> bool:
    if not shutil.which("nvidia-smi"):
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def _has_option(args: Sequence[str], *names: str) -> bool:
    return any(a == n or a.startswith(n + "=") for a in args for n in names)


def run_command(spec: LocalRun, gpus: bool, lb: LbServing | None = None) -> list[str]:
    """The `docker run` command line (pure). A queue image runs its local job API (`--local`); a
    load-balancing image serves on its own ports, as on RunPod."""
    cmd = ["docker", "run", "--detach"]
    for port in lb.ports if lb else [WORKER_PORT]:
        cmd += ["--publish", f"127.0.0.1::{port}"]
    if gpus and not _has_option(spec.docker_args, "--gpus"):
        cmd += ["--gpus", "all"]
    if not _has_option(spec.docker_args, "--shm-size", "--ipc"):
        cmd += ["--shm-size", "16g"]  # FastDeploy keeps its IPC in /dev/shm (Docker's default is 64 MB)
    for key in spec.env or {}:
        cmd += ["--env", key]
    cmd += [*spec.docker_args, spec.image]
    if lb is None:
        cmd += ["--local", "--host", "0.0.0.0", "--port", str(WORKER_PORT)]
    return cmd


def _docker(
    args: list[str], timeout: float = 60.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
    )


def log_tail(container: str, lines: int = LOG_TAIL) -> str:
    try:
        out = subprocess.run(
            ["docker", "logs", "--tail", str(lines), container],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60, errors="replace",
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        return f"(no log: {exc})"
    return out.stdout.rstrip()


def _state(container: str) -> str:
    out = _docker(["docker", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", container])
    return out.stdout.strip() if out.returncode == 0 else "gone"


def _port(container: str, port: int = WORKER_PORT) -> int:
    out = _docker(["docker", "port", container, f"{port}/tcp"])
    for line in out.stdout.splitlines():
        host, _, port = line.strip().rpartition(":")
        if port.isdigit() and host in ("127.0.0.1", "0.0.0.0"):
            return int(port)
    raise LocalTestError(f"docker published no port for {port}/tcp: {out.stdout or out.stderr}".strip())


def wait_ready(container: str, base: str, timeout: float, out: TextIO) -> float:
    progress = Progress(out, "waiting for the worker to be ready")
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{base}/health", timeout=2).status_code == 200:
                took = time.monotonic() - progress.started
                progress.done(f"worker ready after {took:.1f} s")
                return took
        except requests.RequestException:
            pass
        state = _state(container)
        if not state.startswith(("running", "created")):
            progress.done("")
            raise LocalTestError(f"the container stopped before it was ready ({state})")
        if time.monotonic() > deadline:
            progress.done("")
            raise LocalTestError(f"the worker was not ready within {timeout:g} s (--ready-timeout)")
        progress.tick()
        time.sleep(0.5)


def image_missing(image: str) -> bool:
    """True when the engine answers that it has no such image (False when it has it, or cannot say:
    `docker run` then reports the engine's own problem)."""
    if not shutil.which("docker"):
        return False
    try:
        found = _docker(["docker", "image", "inspect", "--format", "{{.Id}}", image], timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return found.returncode != 0 and "no such image" in (found.stderr + found.stdout).lower()


def _run_lb(
    container: str,
    spec: LocalRun,
    lb: LbServing,
    tests: Sequence[TestJob],
    say: Callable[[str], None],
    out: TextIO,
) -> int:
    def fatal(status: int | None) -> str | None:
        if status == 503:
            return "the worker reports that its engine died (health check 503)"
        state = _state(container)
        return None if state.startswith(("running", "created")) else f"the container stopped ({state})"

    try:
        base = f"http://127.0.0.1:{_port(container, lb.port)}"
        health = f"http://127.0.0.1:{_port(container, lb.health_port)}{lb.health_path}"
    except LocalTestError as exc:
        say(f"error: {exc}")
        return 1
    say(f"worker: {base} (health check {health})")
    return run_lb_tests(LbClient(base), health, tests, lb.model, spec.ready_timeout, say, out, fatal)


def run_local(
    spec: LocalRun,
    tests: Sequence[TestJob],
    say: Callable[[str], None],
    out: TextIO,
    lb: LbServing | None = None,
) -> int:
    """Start the container, run every job, print the report; 0 when all passed, else 1."""
    if not shutil.which("docker"):
        say("error: the docker command is not installed: the local test runs the image with `docker run`")
        return 1
    gpus = host_has_gpus() if spec.gpus is None else spec.gpus
    env = {**os.environ, **(spec.env or {})}
    started = _docker(run_command(spec, gpus, lb), timeout=600, env=env)
    if started.returncode != 0:
        say(f"error: docker run {spec.image} failed: {started.stderr.strip() or started.stdout.strip()}")
        return 1
    container = started.stdout.strip().splitlines()[-1]
    with_gpus = " with --gpus all" if gpus and not _has_option(spec.docker_args, "--gpus") else ""
    say(f"started {spec.image} as container {container[:12]}{with_gpus}")
    failed = True
    try:
        if lb is not None:
            code = _run_lb(container, spec, lb, tests, say, out)
            failed = code != 0
            return code
        try:
            base = f"http://127.0.0.1:{_port(container)}"
            wait_ready(container, base, spec.ready_timeout, out)
        except LocalTestError as exc:
            say(f"error: {exc}")
            return 1
        code = summary(run_each(JobClient(base).run, tests, say), say)
        failed = code != 0
        return code
    except KeyboardInterrupt:  # Ctrl-C: the CLI says what was left in one line, no log tail
        failed = False
        raise
    finally:
        if failed:
            say(f"last {LOG_TAIL} lines of the container's log:")
            say(log_tail(container))
        _docker(["docker", "rm", "--force", container], timeout=120)
