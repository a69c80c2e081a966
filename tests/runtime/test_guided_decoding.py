"""Structured outputs through the runtime (subprocess) against the stand-in, through the official openai
SDK and native jobs, on both front doors (the local RunPod-shaped endpoint and the load balancer).

The engine alone, guided decoding off (FastDeploy's default), answers a ``response_format`` request with
free text and a 200. The worker refuses it with 400 naming GUIDED_DECODING_BACKEND, before the engine
sees it; with the backend on, the answer satisfies the schema; a backend whose packages are missing stops
the worker at start with one paragraph."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from worker_runtime.engine.ports import free_ports

from .conftest import LB_READY, LOCAL_READY, REPO, STANDIN, WAIT, RuntimeProcess, http, runtime_env, start_lb
from .test_standin_guided import RESPONSE_FORMAT, SCHEMA

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "The capital of France, as JSON."}]


@pytest.fixture(scope="module")
def backend_packages(tmp_path_factory) -> Path:
    """Importable ``xgrammar`` and ``torch`` packages: the worker's start check and the engine's import
    check look for them (the real ones need CUDA); llguidance is the real package (requirements-dev)."""
    root = tmp_path_factory.mktemp("backend-packages")
    for name in ("xgrammar", "torch"):
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(f'"""{name}, as far as an import check sees it."""\n')
    return root


def engine_requests(rt: RuntimeProcess) -> list[str]:
    """Every request line the engine received (FD_STANDIN_REQUEST_LOG, requests.log in the log folder)."""
    path = Path(rt.log_dir) / "requests.log"
    return path.read_text().splitlines() if path.exists() else []


def local(**extra: str) -> RuntimeProcess:
    """A --local runtime whose stand-in records the requests it receives (as start_lb's does)."""
    (port,) = free_ports(1)
    env = runtime_env(**extra)
    env.setdefault("FD_STANDIN_REQUEST_LOG", os.path.join(env["FD_LOG_DIR"], "requests.log"))
    return RuntimeProcess(["--local", "--host", "127.0.0.1", "--port", str(port)], env, port)


@pytest.fixture
def runtimes() -> Iterator[Any]:
    started: list[RuntimeProcess] = []

    def start(kind: str, wait: bool = True, **extra: str) -> RuntimeProcess:
        rt = local(**extra) if kind == "local" else start_lb(**extra)
        started.append(rt)
        if wait:
            rt.wait_output(LOCAL_READY if kind == "local" else LB_READY)
        return rt

    yield start
    for rt in started:
        rt.stop()


def sdk(rt: RuntimeProcess, kind: str) -> openai.OpenAI:
    base = rt.base + ("/openai/v1" if kind == "local" else "/v1")
    return openai.OpenAI(base_url=base, api_key="unused", timeout=WAIT, max_retries=0)


def native_job(rt: RuntimeProcess, kind: str, job: dict[str, Any]) -> tuple[int, Any]:
    """A native job: /runsync on the local endpoint (its output or error), POST /generate on a load
    balancer."""
    if kind == "local":
        status, state = http("POST", rt.base + "/runsync", {"input": job})
        assert status == 200, state
        if state.get("status") != "COMPLETED":
            return 400, state.get("error")
        output = state["output"]  # the handler's yields: one response object when not streamed
        return 200, output[0] if isinstance(output, list) and len(output) == 1 else output
    return http("POST", rt.base + "/generate", job)


def test_the_engine_alone_answers_free_text_with_a_200(runtimes):
    """What a worker without the refusal passes on: FastDeploy 2.5 with its default backend (off)."""
    rt = runtimes("local")
    status, body = http(
        "POST",
        f"http://127.0.0.1:{rt.engine_port()}/v1/chat/completions",
        {"messages": MESSAGES, "response_format": RESPONSE_FORMAT},
    )
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body["choices"][0]["message"]["content"])


@pytest.mark.parametrize("kind", ["local", "lb"])
def test_backend_off_refuses_structured_outputs_with_400(runtimes, kind):
    rt = runtimes(kind)
    client = sdk(rt, kind)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="stand-in/model", messages=MESSAGES, response_format=RESPONSE_FORMAT
        )
    assert "GUIDED_DECODING_BACKEND" in str(caught.value) and "guided decoding is off" in str(caught.value)
    for extra in ({"guided_json": SCHEMA}, {"guided_choice": ["yes", "no"]}, {"structural_tag": "{}"}):
        with pytest.raises(openai.BadRequestError, match="GUIDED_DECODING_BACKEND"):
            client.chat.completions.create(model="stand-in/model", messages=MESSAGES, extra_body=extra)
    status, error = native_job(
        rt, kind, {"messages": MESSAGES, "sampling_params": {"response_format": RESPONSE_FORMAT}}
    )
    assert status == 400 and "GUIDED_DECODING_BACKEND" in json.dumps(error)
    # None of them reached the engine; a plain request and response_format "text" still do.
    assert not [line for line in engine_requests(rt) if "completions" in line]
    answer = client.chat.completions.create(
        model="stand-in/model", messages=MESSAGES, response_format={"type": "text"}, max_tokens=8
    )
    assert answer.choices[0].message.content
    assert [line for line in engine_requests(rt) if "chat/completions" in line]


@pytest.mark.parametrize("kind", ["local", "lb"])
def test_backend_on_answers_what_the_schema_allows(runtimes, kind, backend_packages):
    path = os.pathsep.join([str(REPO), str(STANDIN), str(backend_packages)])
    rt = runtimes(kind, GUIDED_DECODING_BACKEND="xgrammar", PYTHONPATH=path)
    rt.wait_output("--guided-decoding-backend xgrammar")
    client = sdk(rt, kind)
    answer = client.chat.completions.create(
        model="stand-in/model", messages=MESSAGES, response_format=RESPONSE_FORMAT, max_tokens=256
    )
    jsonschema.validate(json.loads(answer.choices[0].message.content), SCHEMA)
    status, output = native_job(
        rt, kind, {"messages": MESSAGES, "sampling_params": {"guided_choice": ["yes", "no"]}}
    )
    assert status == 200 and output["choices"][0]["message"]["content"] in ("yes", "no")
    # A schema feature xgrammar does not enforce: 400 naming it, before the engine.
    unsupported = {**SCHEMA, "properties": {"city": {"type": "string", "format": "email"}}}
    with pytest.raises(openai.BadRequestError, match=r"'format' on type 'string' .* xgrammar"):
        client.chat.completions.create(
            model="stand-in/model",
            messages=MESSAGES,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": unsupported}},
        )


def test_guidance_checks_schemas_with_llguidance(runtimes, backend_packages):
    path = os.pathsep.join([str(REPO), str(STANDIN), str(backend_packages)])
    rt = runtimes("local", GUIDED_DECODING_BACKEND="guidance", PYTHONPATH=path)
    client = sdk(rt, "local")
    bad = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    with pytest.raises(openai.BadRequestError, match=r"Unimplemented keys: \[\"uniqueItems\"\]"):
        client.chat.completions.create(
            model="stand-in/model", messages=MESSAGES, extra_body={"guided_json": bad}
        )
    with pytest.raises(openai.BadRequestError, match="guided_regex: the guidance backend cannot use it"):
        client.chat.completions.create(
            model="stand-in/model", messages=MESSAGES, extra_body={"guided_regex": "(a"}
        )
    answer = client.chat.completions.create(
        model="stand-in/model", messages=MESSAGES, extra_body={"guided_json": SCHEMA}, max_tokens=256
    )
    jsonschema.validate(json.loads(answer.choices[0].message.content), SCHEMA)


def test_a_backend_whose_packages_are_missing_stops_the_worker_at_start(runtimes):
    rt = runtimes("local", wait=False, GUIDED_DECODING_BACKEND="guidance")
    assert rt.wait_exit() == 1
    out = rt.output
    assert "GUIDED_DECODING_BACKEND=guidance needs the Python packages llguidance, xgrammar, torch" in out
    assert "lacks xgrammar, torch" in out and "Traceback" not in out
    assert "Starting FastDeploy" not in out  # refused before the engine starts


def test_the_test_verb_checks_the_answers_on_a_load_balancer_and_through_the_sdk(runtimes, backend_packages):
    """builder.verify against the real load-balancing worker: the feature jobs on their routes, then again
    through the openai SDK; with the stand-in breaking the schema, both structured-output runs fail."""
    import io

    from builder.variant.feature_jobs import feature_jobs
    from builder.verify.jobs import TestJob as Job
    from builder.verify.lb import LbClient, run_lb_tests

    path = os.pathsep.join([str(REPO), str(STANDIN), str(backend_packages)])
    jobs = [Job.model_validate(j) for j in feature_jobs("xgrammar", "ernie-x1")]

    def verify(rt: RuntimeProcess) -> tuple[int, str]:
        lines: list[str] = []
        client = LbClient(rt.base)
        code = run_lb_tests(
            client, rt.base + "/ping", jobs, "stand-in/model", WAIT, lines.append, io.StringIO()
        )
        return code, "\n".join(lines)

    settings = {"GUIDED_DECODING_BACKEND": "xgrammar", "TOOL_CALL_PARSER": "ernie-x1", "PYTHONPATH": path}
    code, text = verify(runtimes("lb", **settings))
    assert code == 0, text
    for name in ("structured output", "tool call", "openai sdk structured output", "openai sdk tool call"):
        assert f"ok   {name}  COMPLETED" in text, text
    code, text = verify(runtimes("lb", FD_STANDIN_GUIDED_BREAK="schema", **settings))
    assert code == 1
    failed = [line for line in text.splitlines() if line.startswith("FAIL")]
    assert [line.split("  ")[0] for line in failed] == [
        "FAIL structured output",
        "FAIL openai sdk structured output",
    ]
    assert all("'city' is a required property" in line for line in failed), failed


def test_tool_calls_reach_native_and_openai_streams_whole(runtimes):
    """With a tool-call parser, a tool call arrives whole through a native stream (chunks merged by the
    worker) and an OpenAI stream through the SDK: the declared function, arguments that parse."""
    from builder.variant.feature_jobs import WEATHER_TOOL
    from builder.verify.answers import answer_message

    rt = runtimes("local", TOOL_CALL_PARSER="ernie-x1")
    status, output = native_job(rt, "local", {"messages": MESSAGES, "tools": [WEATHER_TOOL], "stream": True})
    assert status == 200
    _content, calls = answer_message(output)
    assert [c["name"] for c in calls] == ["get_weather"] and "city" in json.loads(calls[0]["arguments"])
    stream = sdk(rt, "local").chat.completions.create(
        model="stand-in/model", messages=MESSAGES, tools=[WEATHER_TOOL], stream=True
    )
    chunks = [chunk.model_dump() for chunk in stream]
    _content, calls = answer_message(chunks)
    assert [c["name"] for c in calls] == ["get_weather"] and "city" in json.loads(calls[0]["arguments"])
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
