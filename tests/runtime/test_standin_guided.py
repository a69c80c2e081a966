"""The engine stand-in's guided decoding and tool calls, as FastDeploy 2.5 answers them (talking to it
directly): off ignores the structured-output fields (free text, 200); on answers what the schema, regex
or choice allows; a tool call comes in 2.5's ``tool_calls`` shape, streamed and not; a backend whose
package is missing stops the start; speculative decoding switches the backend off with a warning."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from .conftest import REPO, STANDIN, WAIT
from .test_standin_behaviours import CHAT, MESSAGES, StandIn

pytestmark = pytest.mark.integration

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.fixture(scope="module")
def backend_packages(tmp_path_factory) -> Path:
    """A folder with an importable ``xgrammar`` package: FastDeploy's config check imports it for every
    backend, and the real one needs torch and CUDA (llguidance is the real package, from requirements-dev)."""
    root = tmp_path_factory.mktemp("backend-packages")
    (root / "xgrammar").mkdir()
    (root / "xgrammar" / "__init__.py").write_text('"""xgrammar, as far as an import check sees it."""\n')
    return root


@pytest.fixture
def engine(backend_packages) -> Iterator[Any]:
    started: list[StandIn] = []

    def start(*flags: str, **env: str) -> StandIn:
        path = os.pathsep.join([str(REPO), str(STANDIN), str(backend_packages)])
        s = StandIn(*flags, PYTHONPATH=path, **env)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def content(body: dict[str, Any]) -> str:
    return body["choices"][0]["message"]["content"]


def test_backend_off_ignores_structured_fields_with_a_200(engine):
    fd = engine()  # 2.5's default: --guided-decoding-backend off
    status, body = fd.request("POST", CHAT, {"messages": MESSAGES, "response_format": RESPONSE_FORMAT})
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(content(body))  # free text, the schema ignored
    status, body = fd.request("POST", CHAT, {"messages": MESSAGES, "guided_choice": ["yes", "no"]})
    assert status == 200 and content(body) not in ("yes", "no")


@pytest.mark.parametrize("backend", ["xgrammar", "guidance", "auto"])
def test_backend_on_answers_what_the_schema_allows(engine, backend):
    fd = engine("--guided-decoding-backend", backend)
    status, body = fd.request("POST", CHAT, {"messages": MESSAGES, "response_format": RESPONSE_FORMAT})
    assert status == 200, body
    jsonschema.validate(json.loads(content(body)), SCHEMA)
    status, body = fd.request("POST", CHAT, {"messages": MESSAGES, "guided_json": SCHEMA})
    jsonschema.validate(json.loads(content(body)), SCHEMA)
    json_object = {"type": "json_object"}
    status, body = fd.request("POST", CHAT, {"messages": MESSAGES, "response_format": json_object})
    assert isinstance(json.loads(content(body)), dict)
    status, body = fd.request("POST", CHAT, {"messages": MESSAGES, "guided_choice": ["yes", "no"]})
    assert content(body) in ("yes", "no")
    pattern = r"[A-Z]{2}-\d{3}(x|y)?"
    status, body = fd.request("POST", CHAT, {"messages": MESSAGES, "guided_regex": pattern})
    assert re.fullmatch(pattern, content(body)), content(body)
    # Streamed: the pieces join into the same kind of answer.
    events = fd.events(CHAT, {"messages": MESSAGES, "response_format": RESPONSE_FORMAT})
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"])
    jsonschema.validate(json.loads(text), SCHEMA)


@pytest.mark.parametrize("mode", ["json", "schema"])
def test_the_break_knob_answers_what_the_schema_refuses(engine, mode):
    fd = engine("--guided-decoding-backend", "xgrammar", FD_STANDIN_GUIDED_BREAK=mode)
    _, body = fd.request("POST", CHAT, {"messages": MESSAGES, "response_format": RESPONSE_FORMAT})
    if mode == "json":
        with pytest.raises(ValueError):
            json.loads(content(body))
    else:
        with pytest.raises(jsonschema.ValidationError, match="is a required property"):
            jsonschema.validate(json.loads(content(body)), SCHEMA)


def test_tool_calls_in_2_5_shape_not_streamed(engine):
    fd = engine("--tool-call-parser", "ernie-x1")
    status, body = fd.request("POST", CHAT, {"messages": MESSAGES, "tools": TOOLS})
    assert status == 200
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == ""
    (call,) = choice["message"]["tool_calls"]
    assert re.fullmatch(r"chatcmpl-tool-[0-9a-f]{32}", call["id"])
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    jsonschema.validate(json.loads(call["function"]["arguments"]), TOOLS[0]["function"]["parameters"])
    # Without tools in the request, or without a parser, the answer is text.
    _, body = fd.request("POST", CHAT, {"messages": MESSAGES})
    assert body["choices"][0]["message"]["tool_calls"] is None
    plain = engine()
    _, body = plain.request("POST", CHAT, {"messages": MESSAGES, "tools": TOOLS})
    assert body["choices"][0]["message"]["tool_calls"] is None
    assert body["choices"][0]["finish_reason"] == "stop"


def test_tool_calls_in_2_5_shape_streamed(engine):
    fd = engine("--tool-call-parser", "ernie-x1")
    events = fd.events(CHAT, {"messages": MESSAGES, "tools": TOOLS})
    assert events[-1] == "[DONE]"
    deltas = [e["choices"][0] for e in events[1:-1] if e["choices"]]
    calls = [d["delta"]["tool_calls"][0] for d in deltas if d["delta"].get("tool_calls")]
    first, rest = calls[0], calls[1:]
    assert set(first) == {"id", "type", "index", "function"} and first["function"] == {"name": "get_weather"}
    assert all(set(c) == {"index", "function"} and c["index"] == 0 for c in rest)
    arguments = "".join(c["function"]["arguments"] for c in rest)
    jsonschema.validate(json.loads(arguments), TOOLS[0]["function"]["parameters"])
    assert all(d["delta"]["content"] == "" for d in deltas if d["delta"].get("tool_calls"))
    assert deltas[-1]["finish_reason"] == "tool_calls"


def start_fails(*flags: str, pythonpath: list[str], log_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FD_")}
    env.update(
        PYTHONPATH=os.pathsep.join(pythonpath),
        FD_LOG_DIR=str(log_dir),
        FD_STANDIN_LOAD_DELAY="0",
        DO_NOT_TRACK="1",
    )
    argv = [sys.executable, "-m", "fastdeploy.entrypoints.openai.api_server", "--model", "m", "--port", "9"]
    return subprocess.run(
        [*argv, *flags], env=env, capture_output=True, text=True, timeout=WAIT, cwd=REPO, check=False
    )


def test_a_backend_whose_package_is_missing_stops_the_start(tmp_path):
    ran = start_fails(
        "--guided-decoding-backend", "xgrammar", pythonpath=[str(REPO), str(STANDIN)], log_dir=tmp_path
    )
    assert ran.returncode != 0 and "import XGrammar failed" in ran.stderr
    ran = start_fails(
        "--guided-decoding-backend", "outlines", pythonpath=[str(REPO), str(STANDIN)], log_dir=tmp_path
    )
    assert ran.returncode != 0 and "Only support [auto, xgrammar, guidance, off]" in ran.stderr


def test_speculative_decoding_switches_the_backend_off_with_a_warning(engine):
    fd = engine("--guided-decoding-backend", "xgrammar", "--speculative-config", '{"method": "mtp"}')
    status, body = fd.request("POST", CHAT, {"messages": MESSAGES, "response_format": RESPONSE_FORMAT})
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(content(body))
    log = (fd.log_dir / "fastdeploy.log").read_text()
    assert "currently do not support Guided decoding, set off" in log
