"""`test --endpoint ID` and `deploy --wait` against RunPod's job API shape: a proxy in front of the real
runtime (`--local`, engine stand-in), the official `openai` SDK for the stream and `runpod` as a client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import runpod

from tests.deploy.conftest import VARIANT, cli

ENDPOINT = "ep-smoke"
REPO = Path(__file__).resolve().parents[2]


def test_smoke_test_runs_every_job_and_one_openai_stream(job_api):
    ran = cli("test", "--variant", VARIANT, "--endpoint", ENDPOINT)
    assert ran.code == 0, ran.text
    for name in ("native chat", "openai chat", "openai models", "openai stream"):
        assert any(line.startswith(f"ok   {name}  COMPLETED") for line in ran.out.splitlines()), ran.out
    assert "4 of 4 job(s) passed" in ran.out
    routes = [route for _, endpoint, route in job_api.seen if endpoint == ENDPOINT]
    assert any(r.startswith("run") for r in routes) and any(r.startswith("status/") for r in routes)
    assert "openai/v1/chat/completions" in routes


def test_a_failing_job_exits_1_with_its_error(clean_env, api_key, local_runtime_factory, proxy_for):
    runtime = local_runtime_factory(FD_STANDIN_HTTP_STATUS="503")
    proxy_for(runtime)
    ran = cli("test", "--variant", VARIANT, "--endpoint", ENDPOINT)
    assert ran.code == 1, ran.text
    assert "FAIL native chat  FAILED" in ran.out
    assert "0 of 4 job(s) passed" in ran.out


def test_a_refused_key_fails_every_job_and_is_not_printed(job_api, clean_env):
    clean_env.setenv("RUNPOD_API_KEY", "rpa_not_the_key")
    ran = cli("test", "--variant", VARIANT, "--endpoint", ENDPOINT)
    assert ran.code == 1
    assert "refused the API key (401)" in ran.out
    assert "rpa_not_the_key" not in ran.text


def test_deploy_wait_polls_health_then_smoke_tests(job_api, fake_api):
    ran = cli("deploy", "--variant", VARIANT, "--registry", "registry.example.com/team", "--no-image-check",
              "--workers-min", "1", "--wait", "--wait-timeout", "60")  # fmt: skip
    assert ran.code == 0, ran.text
    (endpoint,) = fake_api.endpoints.values()
    assert "a worker is ready" in ran.out and "4 of 4 job(s) passed" in ran.out
    assert ("GET", endpoint["id"], "health") in job_api.seen


def test_the_printed_job_url_works_with_the_runpod_client(job_api, api_key, monkeypatch):
    # runpod reads RUNPOD_ENDPOINT_BASE_URL at import: point its module variable the same way.
    monkeypatch.setattr(runpod, "endpoint_url_base", job_api.base)
    out = runpod.Endpoint(ENDPOINT, api_key=api_key).run_sync(
        {"messages": [{"role": "user", "content": "hi"}], "sampling_params": {"max_tokens": 4}}, timeout=60
    )
    assert out and out[0]["object"] == "chat.completion"


def test_local_options_do_not_go_with_endpoint(clean_env):
    ran = cli("test", "--variant", VARIANT, "--endpoint", ENDPOINT, "--docker-args", "--cpus 2")
    assert ran.code == 2 and "go with a local test" in ran.err


def test_smoke_test_in_a_subprocess(job_api, api_key):
    env = {**os.environ, "RUNPOD_ENDPOINT_BASE_URL": job_api.base, "RUNPOD_API_KEY": api_key}
    ran = subprocess.run(
        [sys.executable, "build.py", "test", VARIANT, "--endpoint", ENDPOINT],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "4 of 4 job(s) passed" in ran.stdout
    assert api_key not in ran.stdout + ran.stderr


def test_without_the_openai_package_the_smoke_test_says_what_to_install(clean_env, api_key, monkeypatch):
    clean_env.setenv("RUNPOD_API_KEY", api_key)
    monkeypatch.setitem(sys.modules, "openai", None)  # `import openai` fails as if not installed
    ran = cli("test", "--variant", VARIANT, "--endpoint", ENDPOINT)
    assert ran.code == 1
    assert "pip install -r requirements.txt" in ran.err and "Traceback" not in ran.text
