"""Fixtures: the fake management API, a job API in front of the real runtime (engine stand-in, no
Docker), and the CLI run in-process with its output captured."""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from builder.cli import main
from tests.deploy.fake_management import FakeManagementApi
from tests.deploy.job_proxy import JobApiProxy
from tests.runtime.conftest import RuntimeProcess, start_local

VARIANT = "ernie-0.3b"


@dataclass
class Ran:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def cli(*argv: str) -> Ran:
    """`python build.py ARGV` in-process; SystemExit (argparse) becomes the exit code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return Ran(code, out.getvalue(), err.getvalue())


@pytest.fixture
def api_key() -> str:
    return "rpa_PLANTED" + uuid.uuid4().hex


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No RunPod or registry variables from the host; HOME without a runpod config."""
    for name in ("RUNPOD_API_KEY", "RUNPOD_API_BASE_URL", "RUNPOD_ENDPOINT_BASE_URL",
                 "REGISTRY_USERNAME", "REGISTRY_PASSWORD", "FASTDEPLOY_RUNPOD_REGISTRY"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


@pytest.fixture
def fake_api(clean_env, api_key) -> Iterator[FakeManagementApi]:
    fake = FakeManagementApi(api_key).start()
    clean_env.setenv("RUNPOD_API_BASE_URL", fake.url)
    clean_env.setenv("RUNPOD_API_KEY", api_key)
    yield fake
    fake.stop()
    # Every request any test sent, and every answer of the fake, matched RunPod's schemas.
    assert fake.invalid == [], fake.invalid


@pytest.fixture
def runtime() -> Iterator[RuntimeProcess]:
    rt = start_local()
    try:
        rt.wait_output("Local RunPod-shaped endpoint")
        yield rt
    finally:
        rt.stop()


@pytest.fixture
def job_api(clean_env, api_key, runtime) -> Iterator[JobApiProxy]:
    proxy = JobApiProxy(runtime.base, api_key).start()
    clean_env.setenv("RUNPOD_ENDPOINT_BASE_URL", proxy.base)
    clean_env.setenv("RUNPOD_API_KEY", api_key)
    yield proxy
    proxy.stop()


@pytest.fixture
def local_runtime_factory():
    """Start `--local` runtimes with extra env (engine stand-in knobs); all are stopped afterwards."""
    started: list[RuntimeProcess] = []

    def start(**extra: str) -> RuntimeProcess:
        rt = start_local(**extra)
        started.append(rt)
        rt.wait_output("Local RunPod-shaped endpoint")
        return rt

    yield start
    for rt in started:
        rt.stop()


@pytest.fixture
def proxy_for(clean_env, api_key):
    """Put a job API proxy in front of a runtime and point RUNPOD_ENDPOINT_BASE_URL at it."""
    proxies: list[JobApiProxy] = []

    def make(rt: RuntimeProcess) -> JobApiProxy:
        proxy = JobApiProxy(rt.base, api_key).start()
        proxies.append(proxy)
        clean_env.setenv("RUNPOD_ENDPOINT_BASE_URL", proxy.base)
        clean_env.setenv("RUNPOD_API_KEY", api_key)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()
