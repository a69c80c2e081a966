"""The test verb's load-balancing side: tests.json jobs mapped onto the worker's HTTP routes, the wait on
the health check (204 -> 200 as it happens), `test --endpoint` and `deploy --wait` of an LB variant,
against an in-test worker that follows the runtime's LB contract (lb_contract_server.py)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from builder.verify.jobs import TestJob as Job
from builder.verify.lb import HealthError, HttpCall, LbClient, http_call, wait_healthy
from builder.verify.local import LbServing, LocalRun, run_command
from tests.deploy.conftest import cli
from tests.deploy.lb_contract_server import LbContractServer

LB = "ernie-0.3b-lb"
ENDPOINT = "ep-lb"


@pytest.fixture
def lb_worker(clean_env, api_key) -> Iterator[LbContractServer]:
    server = LbContractServer().start()
    clean_env.setenv("RUNPOD_LB_BASE_URL", server.url)
    clean_env.setenv("RUNPOD_API_KEY", api_key)
    yield server
    server.stop()


@pytest.mark.parametrize(
    "job_input, call",
    [
        ({"messages": [{"role": "user", "content": "hi"}]},
         HttpCall("POST", "/generate", {"messages": [{"role": "user", "content": "hi"}]}, False)),
        ({"prompt": "hi", "stream": True},
         HttpCall("POST", "/generate", {"prompt": "hi", "stream": True}, True)),
        ({"openai_route": "/v1/chat/completions", "openai_input": {"messages": [], "stream": True}},
         HttpCall("POST", "/v1/chat/completions", {"messages": [], "stream": True}, True)),
        ({"openai_route": "/v1/completions", "openai_input": {"prompt": "x"}},
         HttpCall("POST", "/v1/completions", {"prompt": "x"}, False)),
        ({"openai_route": "/v1/models"}, HttpCall("GET", "/v1/models", None, False)),
        ({"openai_route": "/v1/models", "openai_input": {}}, HttpCall("GET", "/v1/models", None, False)),
        ({"messages": [], "stream": "yes"},
         HttpCall("POST", "/generate", {"messages": [], "stream": "yes"}, False)),
    ],
)  # fmt: skip
def test_jobs_map_onto_the_workers_routes(job_input, call):
    assert http_call(job_input) == call


def test_health_wait_shows_204_then_200_as_they_happen():
    server = LbContractServer(loading_polls=3).start()
    try:
        said: list[str] = []
        client = LbClient(server.url)
        seen = wait_healthy(lambda: client.status(f"{server.url}/ping"), 60, said.append, io.StringIO())
    finally:
        server.stop()
    assert seen == [204, 200]
    assert server.health_checks == 4  # three 204s, then the 200 ends the wait
    text = "\n".join(said)
    assert text.index("health: 204 (initializing)") < text.index("health: 200 (ready)")


def test_health_wait_stops_at_a_fatal_answer_and_at_its_timeout():
    server = LbContractServer(dead=True).start()
    try:
        client = LbClient(server.url)
        with pytest.raises(HealthError, match="engine died"):
            wait_healthy(
                lambda: client.status(f"{server.url}/ping"), 60, print, io.StringIO(),
                fatal=lambda s: "the engine died" if s == 503 else None,
            )  # fmt: skip
        with pytest.raises(HealthError, match=r"did not answer 200 within 0.2 s \(last: 503\)"):
            wait_healthy(lambda: client.status(f"{server.url}/ping"), 0.2, print, io.StringIO())
    finally:
        server.stop()


def test_a_stream_without_done_and_an_error_status_fail_the_job():
    server = LbContractServer(no_done=True, fail={"/v1/completions": (400, "max_tokens is too large")})
    server.start()
    try:
        client = LbClient(server.url)
        streamed = client.run(Job(name="s", input={"prompt": "x", "stream": True}, timeout=30_000))
        refused = client.run(
            Job(name="r", input={"openai_route": "/v1/completions", "openai_input": {"prompt": "x"}},
                    timeout=30_000)
        )  # fmt: skip
        native = client.run(Job(name="n", input={"prompt": "x"}, timeout=30_000))
    finally:
        server.stop()
    assert streamed.status == "ERROR" and "without data: [DONE]" in (streamed.error or "")
    assert refused.status == "FAILED"
    assert refused.error == "POST /v1/completions answered 400: max_tokens is too large"
    assert native.ok and native.output["choices"][0]["text"] == "Hello!"


def test_test_endpoint_runs_every_job_on_its_route_with_the_key_as_bearer(lb_worker, api_key):
    ran = cli("test", "--variant", LB, "--endpoint", ENDPOINT)
    assert ran.code == 0, ran.text
    assert ran.out.index("health: 204 (initializing)") < ran.out.index("health: 200 (ready)")
    for name in ("native chat", "openai chat", "openai models", "openai stream"):
        assert any(line.startswith(f"ok   {name}  COMPLETED") for line in ran.out.splitlines()), ran.out
    assert "4 of 4 job(s) passed" in ran.out
    assert {s.authorization for s in lb_worker.seen} == {f"Bearer {api_key}"}
    assert lb_worker.paths("POST") == ["/generate", "/v1/chat/completions", "/v1/chat/completions"]
    assert "/v1/models" in lb_worker.paths("GET")
    generate, chat, stream = (s.body for s in lb_worker.seen if s.method == "POST")
    assert generate["messages"][0]["content"] == "Say hello in one word."  # the job's input, as is
    assert chat["max_tokens"] == 16 and "stream" not in chat
    assert stream["stream"] is True and stream["model"] == "baidu/ERNIE-4.5-0.3B-Paddle"  # the SDK's
    assert api_key not in ran.text


def test_an_endpoint_deployed_with_another_health_path_is_polled_there(lb_worker):
    lb_worker.health_path = "/health"
    ran = cli("test", "--variant", LB, "--endpoint", ENDPOINT, "--env", "HEALTH_CHECK_PATH=/health")
    assert ran.code == 0, ran.text
    assert "/health" in lb_worker.paths("GET") and "/ping" not in lb_worker.paths("GET")
    other = cli("test", "--variant", LB, "--endpoint", ENDPOINT, "--env", "MAX_MODEL_LEN=4096")
    assert other.code == 2 and "go with a local test" in other.err


def test_a_failing_route_exits_1_with_the_workers_message(lb_worker):
    lb_worker.fail["/generate"] = (400, "Job input has no messages, prompt or openai_route")
    ran = cli("test", "--variant", LB, "--endpoint", ENDPOINT)
    assert ran.code == 1, ran.text
    assert "FAIL native chat  FAILED" in ran.out
    assert "POST /generate answered 400: Job input has no messages" in ran.out
    assert "3 of 4 job(s) passed" in ran.out


def test_deploy_wait_of_an_lb_variant_waits_on_health_then_tests(lb_worker, fake_api):
    ran = cli(
        "deploy", "--variant", LB, "--registry", "registry.example.com/team", "--no-image-check",
        "--wait", "--wait-timeout", "60",
    )  # fmt: skip
    assert ran.code == 0, ran.text
    assert "health: 200 (ready)" in ran.out and "4 of 4 job(s) passed" in ran.out
    (endpoint,) = fake_api.endpoints.values()
    assert endpoint["type"] == "LOAD_BALANCER"


def test_a_local_lb_container_publishes_its_ports_and_runs_the_image_as_on_runpod():
    spec = LocalRun("img:1", ["--cpus", "2"], {"PORT": "8000"}, False)
    cmd = run_command(spec, False, LbServing(8000, 8001, "/ping", "m"))
    assert cmd[:7] == [
        "docker",
        "run",
        "--detach",
        "--publish",
        "127.0.0.1::8000",
        "--publish",
        "127.0.0.1::8001",
    ]
    assert cmd[-3:] == ["--cpus", "2", "img:1"]  # no --local: the worker serves on PORT itself
    queue = run_command(spec, False)
    assert "--local" in queue and "127.0.0.1::8000" in queue
