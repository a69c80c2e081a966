"""Stand-in for ``fastdeploy.entrypoints.openai.api_server`` (see the package docstring for knobs).

A small asyncio HTTP/1.1 server (keep-alive, chunked SSE) that answers like FastDeploy 2.x:
``data: {...}\\n\\n`` events, a first chat chunk with role, empty contents and a stray space before
its blank line, ``arrival_time``, a usage-only final chunk, error events inside a 200 stream, ``[DONE]``.

Each behaviour names the FastDeploy source it mirrors, as ``path Lnn`` relative to the ``fastdeploy``
package of FastDeploy's branch release/2.5 at commit 474174bb (setup.py: 2.5.0), the commit the runtime's
flag table was read from. Releases before 2.5 keep the stand-in's older answers where noted.

``FD_STANDIN_RELEASE=2.6.0`` is the release/2.6 branch at 7198b588 (setup.py: 2.6.0, unpublished; cited
as "2.6 path Lnn"): its flags and parser defaults (--workers 4 and --max-concurrency 2048 unless
``FD_ENABLE_MULTI_API_SERVER=1``), a client disconnect stopping generation unless
``FD_ENABLE_REQUEST_DISCONNECT_STOP_INFERENCE=0``, ``POST /v1/abort_requests`` and ``finish_reason``
"abort" for what it aborts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastdeploy.entrypoints.openai import guided
from fastdeploy.usage.usage_lib import WAIT as USAGE_WAIT
from fastdeploy.usage.usage_lib import report_usage_stats

SRC = "release/2.5 474174bb"  # the FastDeploy source every citation below refers to
# gunicorn's default keepalive (api_server.py L716-725 sets none; UvicornWorker passes it to uvicorn as
# timeout_keep_alive): an idle keep-alive connection is closed 2 s after its last response.
KEEP_ALIVE_SECONDS = 2.0


def flags_file() -> Path:
    """The runtime's own flag table, ``worker_runtime/config/engine_flags.json`` (read, never copied).

    Found through the import system without importing the runtime: on the tests' PYTHONPATH, and in
    an image from the worker's directory (the engine is started with the worker's working directory).
    ``FD_STANDIN_FLAGS_FILE`` names another file.
    """
    override = os.environ.get("FD_STANDIN_FLAGS_FILE", "").strip()
    if override:
        return Path(override)
    spec = importlib.util.find_spec("worker_runtime")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "stand-in: cannot find worker_runtime/config/engine_flags.json "
            "(worker_runtime is not importable; set FD_STANDIN_FLAGS_FILE)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "config" / "engine_flags.json"


# Deterministic vocabulary: ASCII, CJK, emoji with ZWJ sequences, skin tones and flags, so that
# multi-byte characters and multi-code-point graphemes get split across tokens.
WORDS = (
    "FastDeploy",
    "serves",
    "ERNIE",
    "你好",
    "世界",
    "模型",
    "推理",
    "🚀",
    "👩‍💻",
    "👍🏽",
    "🇨🇳",
    "naïve",
    "café",
    "über",
    "mañana",
    "日本語",
    "テキスト",
    "한국어",
    "Ωμέγα",
    "🧪",
    "streaming",
    "tokens",
    "—",
    "∑",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "🎉",
    "ok",
)
REASONING_WORDS = ("Let", "me", "think", "思考", "🤔", "about", "it")


def env_float(name: str, default: float = 0.0) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw.strip() else default


def env_int(name: str, default: int = 0) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


# ----------------------------------------------------------------------------- flags


# release/2.6 make_arg_parser: with FD_ENABLE_MULTI_API_SERVER=1 (set by its multi-API-server launcher for
# its children) the API server keeps 2.5's defaults (2.6 entrypoints/openai/utils.py L344-357); the flag
# table holds the defaults without it.
MULTI_API_SERVER_DEFAULTS = {"workers": 1, "max_concurrency": 512}


def at_least(release: str, version: tuple[int, int]) -> bool:
    return tuple(int(p) for p in release.split(".")[:2]) >= version


def build_parser(release: str) -> argparse.ArgumentParser:
    """An argparse parser accepting exactly the flags of ``release``."""
    table = json.loads(flags_file().read_text(encoding="utf-8"))["releases"]
    if release not in table:
        raise SystemExit(f"FD_STANDIN_RELEASE={release!r}: known releases are {', '.join(sorted(table))}")
    parser = argparse.ArgumentParser(prog="api_server", allow_abbrev=False)
    for name, spec in table[release]["flags"].items():
        names = [name, *spec.get("aliases", [])]
        dest = name.lstrip("-").replace("-", "_")
        action = spec.get("action")
        kwargs: dict[str, Any] = {"dest": dest, "default": spec.get("default")}
        if action in ("store_true", "DeprecatedOptionWarning"):
            parser.add_argument(*names, action="store_true", **kwargs)
            continue
        if action == "BooleanOptionalAction":
            parser.add_argument(*names, action="store_true", **kwargs)
            if spec.get("negative_form"):
                parser.add_argument(spec["negative_form"], action="store_false", dest=dest)
            continue
        kind = spec.get("type")
        kwargs["type"] = {"int": int, "float": float}.get(kind, str)
        if action == "append":
            kwargs["action"] = "append"
        if spec.get("nargs"):
            kwargs["nargs"] = spec["nargs"]
        if spec.get("choices"):
            kwargs["choices"] = spec["choices"]
        parser.add_argument(*names, **kwargs)
    if at_least(release, (2, 6)) and os.environ.get("FD_ENABLE_MULTI_API_SERVER") == "1":
        parser.set_defaults(**MULTI_API_SERVER_DEFAULTS)
    return parser


# ----------------------------------------------------------------------------- logs


class Logs:
    def __init__(self, directory: str) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.dir / name, "a", encoding="utf-8") as f:
            f.write(f"{stamp} {line}\n")


# ----------------------------------------------------------------------------- generation


def tokens_for(prompt: str, reasoning: bool) -> tuple[list[str], list[str]]:
    """Deterministic (reasoning tokens, answer tokens) for a prompt."""
    seed = zlib.crc32(prompt.encode("utf-8"))
    n_answer = env_int("FD_STANDIN_ANSWER_TOKENS", 40)
    words = [WORDS[(seed + 7 * i) % len(WORDS)] for i in range(n_answer)]
    text = " ".join(words)
    # Code points grouped 1, 2, 3, 1, 2, 3...: graphemes and words split across tokens.
    answer: list[str] = []
    i = 0
    size = 1 + seed % 3
    while len(answer) < n_answer and i < len(text):
        answer.append(text[i : i + size])
        i += size
        size = size % 3 + 1
    thinking = [w + " " for w in REASONING_WORDS] if reasoning else []
    return thinking, answer


def apply_limits(answer: list[str], max_tokens: int | None, stop: list[str]) -> tuple[list[str], str]:
    """Tokens actually emitted and the finish reason (max_tokens first, then stop strings)."""
    out, finish = answer, "stop"
    if max_tokens is not None and max_tokens < len(answer):
        out, finish = answer[:max_tokens], "length"
    text = "".join(out)
    hits = [text.find(s) for s in stop if s and s in text]
    if hits:
        return _retokenize(text[: min(hits)], out), "stop"
    return out, finish


def _retokenize(text: str, kept: list[str]) -> list[str]:
    out: list[str] = []
    used = 0
    for tok in kept:
        if used + len(tok) <= len(text):
            out.append(tok)
            used += len(tok)
        else:
            if used < len(text):
                out.append(text[used:])
            break
    return out


def prompt_text(body: dict[str, Any], chat: bool) -> str:
    if chat:
        parts = []
        for m in body.get("messages") or []:
            content = m.get("content") if isinstance(m, dict) else m
            parts.append(content if isinstance(content, str) else json.dumps(content, ensure_ascii=False))
        return "\n".join(parts)
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)


def prompts_of(body: dict[str, Any]) -> list[tuple[str, int]]:
    """(text, prompt tokens) of each prompt of a completions request: a string, a list of strings,
    a list of token ids, or a list of token id lists (protocol.py L496)."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return [(p, len(p) // 4 + 1) for p in prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, list) for p in prompt):
        return [(json.dumps(p), len(p)) for p in prompt]
    if isinstance(prompt, list):
        return [(json.dumps(prompt), len(prompt))]
    text = prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)
    return [(text, len(text) // 4 + 1)]


TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/usr/local/lib/python3.10/dist-packages/fastdeploy/entrypoints/openai/serving_chat.py", '
    "line 152, in create_chat_completion\n"
    "    prompt_token_ids = await self.engine_client.format_and_add_data(current_req_dict)\n"
    "{kind}: {message}\n"
)


class RequestError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None,
        type_: str = "invalid_request_error",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.type, self.param = status, message, code, type_, param


@dataclass
class Choice:
    """One choice to generate: its index, its prompt's token count and its planned tokens."""

    index: int
    prompt_tokens: int
    thinking: list[str]
    tokens: list[str]
    finish: str
    # A tool call the parser extracted (guided.tool_call): its name, then its arguments in pieces.
    tool: dict[str, Any] | None = None

    @property
    def tool_steps(self) -> list[tuple[str, str]]:
        if self.tool is None:
            return []
        return [("tool_name", self.tool["name"])] + [
            ("tool_args", t) for t in guided.tokens(self.tool["arguments"])
        ]

    @property
    def steps(self) -> list[tuple[str, str]]:
        return (
            [("reasoning_content", t) for t in self.thinking]
            + [("content", t) for t in self.tokens]
            + self.tool_steps
        )

    def usage(self) -> dict[str, Any]:
        n = len(self.thinking) + len(self.tokens) + len(self.tool_steps)
        return {
            "prompt_tokens": self.prompt_tokens,
            "total_tokens": self.prompt_tokens + n,
            "completion_tokens": n,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": len(self.thinking)},
        }


class Reader:
    """Who still reads a response: the client closing its connection is seen as EOF on it."""

    def __init__(self, app: StandIn, reader: asyncio.StreamReader, rid: str) -> None:
        self.app, self.reader, self.rid = app, reader, rid
        self.gone = False

    def client_gone(self) -> bool:
        if not self.gone and self.reader.at_eof():
            self.mark_gone()
        return self.gone

    def mark_gone(self) -> None:
        if not self.gone:
            self.gone = True
            self.app.disconnects += 1
            self.app.logs.write("api_server.log", f"ERROR request[{self.rid}] client disconnected")


# ----------------------------------------------------------------------------- server


def chat_opening_delta() -> dict[str, Any]:
    """DeltaMessage(role, reasoning_content="", tool_calls, prompt_token_ids, completion_token_ids),
    then content = "" (serving_chat.py L328-345), in the model's field order."""
    return {
        "role": "assistant",
        "content": "",
        "prompt_token_ids": None,
        "completion_token_ids": None,
        "reasoning_content": "",
        "tool_calls": None,
    }


def tool_call_delta(choice: Choice, field: str, tok: str) -> dict[str, Any]:
    """A tool call's delta (serving_chat.py L413-424 with the parser's DeltaMessage, ernie_x1_tool_parser.py
    extract_tool_calls_streaming): the name with id and type first, then pieces of the arguments; content
    "" throughout. The DeltaToolCall fields the parser did not set are left out (exclude_unset)."""
    assert choice.tool is not None
    if field == "tool_name":
        call = {"id": choice.tool["id"], "type": "function", "index": 0, "function": {"name": tok}}
    else:
        call = {"index": 0, "function": {"arguments": tok}}
    return {
        "content": "",
        "prompt_token_ids": None,
        "completion_token_ids": None,
        "reasoning_content": None,
        "tool_calls": [call],
    }


def chat_token_delta(content: str, thought: str) -> dict[str, Any]:
    """A token's delta (serving_chat.py L413-424): no role after the opening chunk."""
    return {
        "content": content,
        "prompt_token_ids": None,
        "completion_token_ids": None,
        "reasoning_content": thought,
        "tool_calls": None,
    }


def stream_choice(
    chat: bool,
    index: int,
    delta: dict[str, Any] | None,
    finish_reason: str | None,
    text_piece: str = "",
    thought: str | None = None,
    opening: bool = False,
) -> dict[str, Any]:
    """One choice of a stream chunk.

    2.5 dumps every chunk with exclude_unset: a field is written only when the server set it, in the
    model's field order (protocol.py L308-437). finish_reason is set only on a choice's last chunk
    (serving_chat.py L453-464, serving_completion.py L578-584).
    """
    if chat and opening:
        # serving_chat.py L326-336: index, delta and prompt_logprobs only.
        return {"index": index, "delta": delta, "prompt_logprobs": None}
    if chat:
        # serving_chat.py L430-437
        choice = {"index": index, "delta": delta, "logprobs": None, "draft_logprobs": None}
        if finish_reason is not None:
            choice["finish_reason"] = finish_reason
        choice["arrival_time"] = time.time()
        choice["speculate_metrics"] = None
        return choice
    # serving_completion.py L559-575
    choice = {
        "index": index,
        "text": text_piece,
        "arrival_time": time.time(),
        "logprobs": None,
        "draft_logprobs": None,
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "completion_token_ids": None,
        "completion_tokens": None,
        "reasoning_content": thought,
    }
    if finish_reason is not None:
        choice["finish_reason"] = finish_reason
    choice["tool_calls"] = None
    choice["speculate_metrics"] = None
    return choice


def stream_chunk(
    head: dict[str, Any], chat: bool, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None
) -> bytes:
    """One stream chunk's JSON; ``head`` holds id, object, created and model. Chat: the chunk object
    of serving_chat.py L248-254 (id, object, created, model, choices). Completions:
    CompletionStreamResponse(id, created, model, choices, metrics) at serving_completion.py
    L596-602, so no "object" and a "metrics": null. ``usage``: a usage chunk, ``choices`` empty
    (serving_chat.py L511-517, serving_completion.py L625-645)."""
    if chat:
        out = {**head, "choices": choices}
    else:
        out = {"id": head["id"], "created": head["created"], "model": head["model"], "choices": choices}
    if usage is not None:
        out["usage"] = usage
    if not chat:
        out["metrics"] = None
    return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def character_cut(data: bytes) -> int:
    """Where to cut ``data`` in two so that one UTF-8 character straddles the cut (its middle when it
    has no multi-byte character)."""
    return next((i for i, b in enumerate(data) if b & 0xC0 == 0x80), len(data) // 2)


class StandIn:
    def __init__(
        self, args: argparse.Namespace, release: str, logs: Logs, guided_backend: str = "off"
    ) -> None:
        self.args = args
        # Guided decoding as the engine ended up configured (guided.effective_backend), and the tool parser.
        self.guided_backend = guided_backend
        self.tool_parser: str | None = getattr(args, "tool_call_parser", None)
        self.release = release
        self.logs = logs
        self.model_path: str = args.model
        self.served: str | None = getattr(args, "served_model_name", None)
        self.max_model_len: int = args.max_model_len or 2048
        self.max_concurrency: int = getattr(args, "max_concurrency", None) or 512
        self.reasoning = bool(getattr(args, "reasoning_parser", None))
        self.api_keys: list[str] = list(getattr(args, "api_key", None) or [])
        self.enable_logprob = bool(getattr(args, "enable_logprob", False))
        # One request limit per API-server process: ceil(max_concurrency / workers) each (api_server.py
        # L100, 2.6 L101); gunicorn's processes share the port, so connections are spread over them.
        self.workers = max(1, getattr(args, "workers", None) or 1)
        self.process_limit = (self.max_concurrency + self.workers - 1) // self.workers
        self.in_flight = [0] * self.workers
        self.connections = 0
        version = tuple(int(p) for p in release.split(".")[:2])
        self.new_errors = version >= (2, 3)
        # 2.5's answers to request errors (HTTP 500, tracebacks, clamped max_tokens), read from its source.
        self.v25 = version >= (2, 5)
        self.token_delay = env_float("FD_STANDIN_TOKEN_DELAY")
        self.crash_after = env_int("FD_STANDIN_CRASH_MID_STREAM", -1)
        self.error_after = env_int("FD_STANDIN_ERROR_MID_STREAM", -1)
        self.error_tag = os.environ.get("FD_STANDIN_ERROR_TAG", "") == "1"
        self.forced_status = env_int("FD_STANDIN_HTTP_STATUS", 0)
        self.too_many = os.environ.get("FD_STANDIN_TOO_MANY", "") == "1"
        self.hang = os.environ.get("FD_STANDIN_HANG", "") == "1"
        # Benchmarks: each streamed token ends with "<emission time>" (time.monotonic(), system-wide).
        self.stamp = os.environ.get("FD_STANDIN_STAMP_TOKENS", "") == "1"
        # EngineClient.abort() stops a request only with this variable set (envs.py L171-172,
        # entrypoints/engine_client.py L974-975); otherwise a request whose client left decodes on.
        # release/2.6 turns it on by default (2.6 envs.py L199-200).
        self.v26 = version >= (2, 6)
        stop_default = "1" if self.v26 else "0"
        self.stop_on_disconnect = (
            os.environ.get("FD_ENABLE_REQUEST_DISCONNECT_STOP_INFERENCE", stop_default) == "1"
        )
        # 2.6: requests /v1/abort_requests aborted, and the ids of those decoding now.
        self.aborted: set[str] = set()
        self.decoding: set[str] = set()
        # FD_STANDIN_FINISH_REASON: every choice ends with this finish_reason (e.g. 2.6's pd_reschedule,
        # which only a prefill/decode split sends: 2.6 serving_chat.py L806-807, serving_completion.py
        # L738-739; the stream models allow it too, 2.6 protocol.py L342, L425).
        self.forced_finish = os.environ.get("FD_STANDIN_FINISH_REASON", "").strip() or None
        self.paused = False
        # Counters served on /metrics (the tests read them): tokens decoded, tokens decoded for a client
        # that had gone, requests decoding now, client disconnects, idle connections closed, control calls.
        self.generated = 0
        self.unread = 0
        self.running = 0
        self.disconnects = 0
        self.idle_closed = 0
        self.dropped_at_close = 0
        # Seconds between the server's idle close and the client seeing it (network and event-loop
        # latency): a request sent on a connection idle for longer than KEEP_ALIVE_SECONDS minus this
        # is lost, as one that crosses the close in flight is (0: only exact races).
        self.keepalive_race = env_float("FD_STANDIN_KEEPALIVE_RACE")
        self.control_calls: dict[str, int] = {}
        # Test plumbing: every request line received ("METHOD PATH", one a line), on either listener,
        # so that a test can tell which requests reached the engine at all.
        self.request_log = os.environ.get("FD_STANDIN_REQUEST_LOG", "").strip() or None
        # Fault knob: the first N POSTs are read, then their connection is closed with no answer (an
        # API-server process that died while holding the request).
        self.drop_posts = env_int("FD_STANDIN_DROP_POSTS", 0)

    # -- protocol helpers

    def error_body(self, err: RequestError, chat: bool) -> dict[str, Any]:
        if self.new_errors:
            return {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}
        body = {"object": "error", "message": err.message, "code": err.status}
        return {"detail": body} if chat else body

    def reported_model(self, requested: Any) -> str:
        if self.served is None:
            return self.model_path
        return self.served

    def handler_error(self, chat: bool, rid: str, exc_type: str, message: str) -> RequestError:
        """An exception raised while preparing a request, answered as 2.5 does: HTTP 500 (api_server.py
        L542, L578). Chat puts the traceback into the message (serving_chat.py L159-164); completions
        send str(e) with code invalid_value (serving_completion.py L199-205)."""
        if chat:
            text = f"request[{rid}] generator error: {message}, " + TRACEBACK.format(
                kind=exc_type, message=message
            )
            return RequestError(500, text, None)
        return RequestError(500, message, "invalid_value")

    def parameter_error(self, chat: bool, param: str, message: str) -> RequestError:
        """A ParameterError: chat answers type invalid_request_error with the param (serving_chat.py
        L153-158), completions type "invalid_request" and code "400" (serving_completion.py L193-198);
        HTTP 500 both (api_server.py L542, L578)."""
        if chat:
            return RequestError(500, message, None, "invalid_request_error", param)
        return RequestError(500, message, "400", "invalid_request", param)

    def check(self, body: Any, chat: bool, rid: str) -> tuple[dict[str, Any], str]:
        # Pydantic validation failures are the only 400s (utils.py L186-205).
        if not isinstance(body, dict):
            raise RequestError(400, "request body must be a JSON object", "invalid_value")
        if chat and not isinstance(body.get("messages"), list):
            raise RequestError(400, "messages is required", "missing_required_parameter", param="messages")
        if not chat and "prompt" not in body:
            raise RequestError(400, "prompt is required", "missing_required_parameter", param="prompt")
        if not chat and body.get("suffix") is not None and not isinstance(body["suffix"], dict):
            # CompletionRequest.suffix: Optional[dict] (protocol.py L515)
            raise RequestError(400, "Input should be a valid dictionary", "invalid_value", param="suffix")
        model = body.get("model")
        if self.served is not None and model not in (None, self.served, "default"):
            if self.v25:  # serving_chat.py L121-126, serving_completion.py L99-103: 500, internal_error
                raise RequestError(
                    500,
                    f"Unsupported model: [{model}], support [{self.served}] or default",
                    "model_not_support",
                    "internal_error",
                )
            raise RequestError(
                400, f"Unsupported model: {model}, support {self.served} or default", "model_not_support"
            )
        if body.get("stream_options") is not None and not body.get("stream"):
            raise RequestError(400, "Stream options can only be defined when `stream=True`.", "invalid_value")
        text = prompt_text(body, chat)
        if self.v25:
            self.check_v25(body, chat, rid, text)
            return body, text
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (
            not isinstance(max_tokens, int)
            or isinstance(max_tokens, bool)
            or not 1 <= max_tokens < self.max_model_len
        ):
            raise RequestError(400, f"max_tokens can be defined [1, {self.max_model_len}).", "invalid_value")
        prompt_len = len(text) // 4 + 1
        min_tokens = body.get("min_tokens") or 0
        if isinstance(min_tokens, int) and prompt_len + min_tokens >= self.max_model_len:
            raise RequestError(
                400,
                f"Input text is too long, input_ids_len ({prompt_len}) + min_tokens({min_tokens}) "
                f">= max_model_len({self.max_model_len})",
                "context_length_exceeded",
            )
        return body, text

    def requested_max_tokens(self, body: dict[str, Any], chat: bool) -> Any:
        """Chat: max_completion_tokens, overwritten by max_tokens when that is set too (protocol.py
        L746 then the loop at L763-765). Completions have no max_completion_tokens (protocol.py L488-540):
        it is ignored."""
        if chat:
            return (
                body.get("max_tokens")
                if body.get("max_tokens") is not None
                else body.get("max_completion_tokens")
            )
        return body.get("max_tokens")

    def check_v25(self, body: dict[str, Any], chat: bool, rid: str, text: str) -> None:
        max_tokens = self.requested_max_tokens(body, chat)
        if max_tokens is not None and (
            not isinstance(max_tokens, int)
            or isinstance(max_tokens, bool)
            or not 1 <= max_tokens < self.max_model_len
        ):
            # engine_client.py L408-415: a ValueError, answered as a handler error
            message = f"max_tokens can be defined [1, {self.max_model_len}), but now it's {max_tokens}."
            raise self.handler_error(chat, rid, "ValueError", message)
        # Logprobs need --enable-logprob (engine_client.py L443-449 chat, L503-508 completions).
        logprobs = body.get("logprobs")
        wants = logprobs is True if chat else (isinstance(logprobs, int) and not isinstance(logprobs, bool))
        if wants and not self.enable_logprob:
            raise self.parameter_error(
                chat, "logprobs", "Logprobs is disabled, please enable it in startup config."
            )
        min_tokens = body.get("min_tokens") or 1
        for _, prompt_len in prompts_of(body) if not chat else [(text, len(text) // 4 + 1)]:
            if isinstance(min_tokens, int) and prompt_len + min_tokens >= self.max_model_len:
                # engine_client.py L327-333: an EngineError, answered as a handler error
                message = (
                    f"Input text is too long, input_ids_len ({prompt_len}) + min_tokens({min_tokens}) "
                    f">= max_model_len({self.max_model_len})"
                )
                raise self.handler_error(chat, rid, "EngineError", message)

    # -- HTTP plumbing

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, metrics_only: bool = False
    ) -> None:
        first = True
        process = self.connections % self.workers  # the API-server process that accepted it
        self.connections += 1
        try:
            while True:
                if first:
                    line = await reader.readline()
                else:
                    idle_since = time.monotonic()
                    try:  # idle keep-alive connections close after KEEP_ALIVE_SECONDS
                        line = await asyncio.wait_for(reader.readline(), KEEP_ALIVE_SECONDS)
                    except asyncio.TimeoutError:
                        self.idle_closed += 1
                        return
                    if line and time.monotonic() - idle_since >= KEEP_ALIVE_SECONDS - self.keepalive_race:
                        # The request met the close on the way: the server had closed the connection
                        # before reading it, and the client learns it only after sending.
                        self.idle_closed += 1
                        self.dropped_at_close += 1
                        return
                first = False
                if not line:
                    return
                parts = line.decode("latin-1").split()
                if len(parts) < 2:
                    return
                method, target = parts[0], parts[1]
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0") or 0)
                raw = await reader.readexactly(length) if length else b""
                path = target.split("?", 1)[0]
                if self.request_log:
                    with open(self.request_log, "a", encoding="utf-8") as log:
                        log.write(f"{method} {path}\n")
                if method == "POST" and self.drop_posts > 0:
                    self.drop_posts -= 1
                    return
                if metrics_only:
                    keep = await self.route_metrics_app(method, path, writer)
                else:
                    keep = await self.route(method, path, headers, raw, reader, writer, process)
                if not keep or headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def send(
        self, writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str = "application/json"
    ) -> bool:
        reason = {
            200: "OK",
            400: "Bad Request",
            401: "Unauthorized",
            404: "Not Found",
            422: "Unprocessable Entity",
            429: "Too Many Requests",
            500: "Internal Server Error",
        }.get(status, "Error")
        head = (
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\n"
            f"content-length: {len(body)}\r\nserver: uvicorn\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        return True

    async def send_json(self, writer: asyncio.StreamWriter, status: int, obj: Any) -> bool:
        return await self.send(writer, status, json.dumps(obj, ensure_ascii=False).encode("utf-8"))

    def metrics_text(self) -> bytes:
        lines = [
            f"fastdeploy:num_requests_running {self.running}",
            f"standin_generated_tokens_total {self.generated}",
            f"standin_unread_tokens_total {self.unread}",
            f"standin_client_disconnects_total {self.disconnects}",
            f"standin_idle_connections_closed_total {self.idle_closed}",
            f"standin_requests_lost_at_idle_close_total {self.dropped_at_close}",
        ]
        lines += [
            f'standin_control_requests_total{{route="{r}"}} {n}'
            for r, n in sorted(self.control_calls.items())
        ]
        return ("\n".join(lines) + "\n").encode()

    async def route_metrics_app(self, method: str, path: str, writer: asyncio.StreamWriter) -> bool:
        """The separate metrics listener (api_server.py L743-770): /metrics and /config-info."""
        if path == "/metrics" and method == "GET":
            return await self.send(writer, 200, self.metrics_text(), "text/plain")
        if path == "/config-info" and method == "GET":
            env = {k: v for k, v in os.environ.items() if k.startswith("FD_")}
            return await self.send_json(writer, 200, {"args": vars(self.args), "env": env})
        return await self.send_json(writer, 404, {"detail": "Not Found"})

    async def control(self, method: str, path: str, writer: asyncio.StreamWriter) -> bool:
        """The control routes of api_server.py L383-473, answered as ControlResponse.to_api_json_response
        (engine/request.py L677-686). pause aborts every running request and drops new ones until
        resume (engine/common_engine.py L1284-1338, L1198-1202)."""
        self.control_calls[path] = self.control_calls.get(path, 0) + 1
        action = path.rsplit("/", 1)[1]
        self.logs.write("api_server.log", f"INFO control request: {action}")
        result: dict[str, Any] | None = None
        if action == "pause":
            self.paused = True
        elif action == "resume":
            self.paused = False
        elif action == "is_paused":
            result = {"is_paused": self.paused}
        body = {
            "request_id": f"control-{uuid.uuid4()}",
            "status": "success",
            "error_message": None,
            "result": result,
        }
        return await self.send_json(writer, 200, body)

    async def route(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        raw: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        process: int = 0,
    ) -> bool:
        if path == "/health" and method == "GET":
            return await self.send(writer, 200, b"")
        if path in ("/metrics", "/config-info") and method == "GET":
            # Without --metrics-port (2.5's default) metrics are served on the main port (api_server.py L740)
            return await self.route_metrics_app(method, path, writer)
        if not path.startswith("/v1/"):
            return await self.send_json(writer, 404, {"detail": "Not Found"})
        if self.api_keys and headers.get("authorization", "") not in [f"Bearer {k}" for k in self.api_keys]:
            return await self.send_json(writer, 401, {"error": "Unauthorized"})
        if (method, path) in CONTROL_ROUTES:
            return await self.control(method, path, writer)
        if self.v26 and (method, path) == ABORT_ROUTE:
            return await self.abort_requests(raw, writer)
        if self.hang:
            await asyncio.Event().wait()  # never answers (the client must time out)
        if self.too_many or self.in_flight[process] >= self.process_limit:
            # api_server.py L321-328 raises HTTPException(429); L552-554 answers {"detail": ...}
            detail = f"Too many requests,current max concurrency is {self.max_concurrency}"
            return await self.send_json(writer, 429, {"detail": detail})
        if self.forced_status:
            err = RequestError(
                self.forced_status,
                f"stand-in forced HTTP {self.forced_status}",
                "internal_error",
                "server_error" if self.forced_status >= 500 else "invalid_request_error",
            )
            return await self.send_json(writer, self.forced_status, self.error_body(err, True))
        if path == "/v1/models" and method == "GET":
            return await self.send_json(writer, 200, self.models())
        if method == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
            chat = path == "/v1/chat/completions"
            rid = f"chatcmpl-{uuid.uuid4()}" if chat else f"cmpl-{uuid.uuid4()}"
            self.in_flight[process] += 1
            try:
                try:
                    body = json.loads(raw.decode("utf-8")) if raw else None
                    body, text = self.check(body, chat, rid)
                except ValueError:
                    err = RequestError(
                        422 if not self.new_errors else 400, "invalid JSON body", "invalid_value"
                    )
                    return await self.send_json(writer, err.status, self.error_body(err, chat))
                except RequestError as err:
                    self.logs.write("api_server.log", f"ERROR request rejected: {err.message}")
                    return await self.send_json(writer, err.status, self.error_body(err, chat))
                if self.paused:
                    # A paused engine drops new requests (engine/common_engine.py L1198-1202).
                    err = RequestError(
                        500, "Request is aborted since LLM Engine is paused.", None, "internal_error"
                    )
                    return await self.send_json(writer, 500, self.error_body(err, chat))
                choices = self.plan(body, text, chat)
                if body.get("stream"):
                    return await self.stream(writer, reader, rid, body, choices, chat)
                return await self.complete(writer, reader, rid, body, choices, chat)
            finally:
                self.in_flight[process] -= 1
        return await self.send_json(writer, 404, {"detail": "Not Found"})

    async def abort_requests(self, raw: bytes, writer: asyncio.StreamWriter) -> bool:
        """2.6 api_server.py L479-490: abort the named requests (or all), answer 200 with no body; the
        engine ends each with finish_reason "abort" (2.6 serving_chat.py L474-475, L803-804;
        serving_completion.py L594-595, L736-737)."""
        self.control_calls["/v1/abort_requests"] = self.control_calls.get("/v1/abort_requests", 0) + 1
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return await self.send_json(writer, 422, {"detail": "invalid JSON body"})
        abort_all, req_ids = body.get("abort_all", False), body.get("req_ids") or []
        if not abort_all and not req_ids:
            return await self.send_json(writer, 400, {"error": "must provide abort_all=true or req_ids"})
        # Engine request ids carry a choice suffix ("_0"): a bare response id names all of its choices.
        named = {str(r).split("_")[0] for r in req_ids}
        self.aborted |= {rid for rid in self.decoding if abort_all or rid in named}
        self.logs.write("api_server.log", f"INFO abort requests: {sorted(self.aborted)}")
        return await self.send(writer, 200, b"")

    def models(self) -> dict[str, Any]:
        name = self.served or self.model_path
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": int(time.time()),
                    "owned_by": "FastDeploy",
                    "root": self.model_path,
                    "parent": None,
                    "max_model_len": self.max_model_len,
                    "permission": [
                        {
                            "id": f"modelperm-{uuid.uuid4().hex}",
                            "object": "model_permission",
                            "created": int(time.time()),
                            "allow_create_engine": False,
                            "allow_sampling": True,
                            "allow_logprobs": True,
                            "allow_search_indices": False,
                            "allow_view": True,
                            "allow_fine_tuning": False,
                            "organization": "*",
                            "group": None,
                            "is_blocking": False,
                        }
                    ],
                }
            ],
        }

    def plan_one(self, body: dict[str, Any], text: str, prompt_tokens: int, chat: bool, index: int) -> Choice:
        thinking, answer = tokens_for(text, self.reasoning)
        # Guided decoding off: the fields are ignored (free text). On: the answer satisfies them.
        asked = guided.guided_kind(body) if self.guided_backend != "off" else None
        structured = guided.structured_text(asked[0], asked[1], text) if asked else None
        if structured is not None:
            answer = guided.tokens(structured)
        # The parser runs on every output when set; the model calls a tool when the prompt lists tools.
        call = guided.tool_call(body, text) if chat and self.tool_parser and structured is None else None
        if call is not None:
            answer = []
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str)]
        max_tokens = (
            self.requested_max_tokens(body, chat)
            if self.v25
            else body.get("max_completion_tokens", body.get("max_tokens"))
        )
        if self.v25:
            # Unset: max_model_len - 1 (engine_client.py L276-277); then clamped to the room the prompt
            # leaves, never refused (engine_client.py L315).
            requested = max_tokens if max_tokens is not None else self.max_model_len - 1
            max_tokens = min(self.max_model_len - prompt_tokens, requested)
        budget = None if max_tokens is None else max(0, max_tokens - len(thinking))
        thinking = thinking if max_tokens is None else thinking[:max_tokens]
        tokens, finish = apply_limits(answer, budget, stop)
        if budget == 0:
            tokens, finish = [], "length"
        if call is not None and finish == "stop":
            # serving_chat.py L456-459 / L788-792: a stop with tool calls is "tool_calls"
            return Choice(index, prompt_tokens, thinking, [], "tool_calls", tool=call)
        return Choice(index, prompt_tokens, thinking, tokens, finish)

    def plan(self, body: dict[str, Any], text: str, chat: bool) -> list[Choice]:
        if chat:
            return [self.plan_one(body, text, len(text) // 4 + 1, chat, 0)]
        # Completions: one choice per prompt and n (serving_completion.py L175-191: index = prompt * n + j)
        n = body.get("n") if isinstance(body.get("n"), int) and body.get("n") >= 1 else 1
        out = []
        for i, (ptext, ptokens) in enumerate(prompts_of(body)):
            for j in range(n):
                out.append(self.plan_one(body, ptext if j == 0 else f"{ptext}#{j}", ptokens, chat, i * n + j))
        return out

    async def decode(self, run: Reader, choices: list[Choice], emit: Any) -> str:
        """Decode every choice token by token, round robin; ``emit(choice, field, token, last)`` sends
        one. Returns "done", "aborted" (client gone and the abort honoured) or "paused".

        A client that leaves does not stop decoding unless FD_ENABLE_REQUEST_DISCONNECT_STOP_INFERENCE=1
        (engine_client.py L974-975): the tokens are counted as unread."""
        positions = {c.index: 0 for c in choices}
        planned = {c.index: c.steps for c in choices}  # built once: long answers cost O(1) a token
        active = [c for c in choices if planned[c.index]]
        if self.forced_finish:
            for choice in choices:
                choice.finish = self.forced_finish
        self.running += 1
        self.decoding.add(run.rid)
        try:
            while active:
                for choice in list(active):
                    if run.client_gone() and self.stop_on_disconnect:
                        self.logs.write("api_server.log", f"INFO abort request_id:{run.rid}")
                        return "aborted"
                    if self.paused:
                        return "paused"
                    if run.rid in self.aborted:
                        await self.end_aborted(run, active, positions, emit)
                        return "done"
                    if self.token_delay:
                        await asyncio.sleep(self.token_delay)
                    self.generated += 1
                    if run.client_gone():
                        self.unread += 1
                    steps = planned[choice.index]
                    pos = positions[choice.index]
                    field, tok = steps[pos]
                    positions[choice.index] = pos + 1
                    last = pos + 1 == len(steps)
                    if last:
                        active.remove(choice)
                    if not run.gone:
                        await emit(choice, field, tok, last)
            return "done"
        finally:
            self.running -= 1
            self.decoding.discard(run.rid)
            self.aborted.discard(run.rid)

    async def end_aborted(
        self, run: Reader, active: list[Choice], positions: dict[int, int], emit: Any
    ) -> None:
        """Each unfinished choice keeps what it decoded and ends with an empty last chunk whose
        finish_reason is "abort" (2.6 serving_chat.py L474-475, serving_completion.py L594-595)."""
        for choice in active:
            decoded = choice.steps[: positions[choice.index]]
            choice.thinking = [t for field, t in decoded if field == "reasoning_content"]
            choice.tokens = [t for field, t in decoded if field == "content"]
            choice.finish = "abort"
            if not run.gone:
                await emit(choice, "content", "", True)
        active.clear()

    async def complete(
        self,
        writer: asyncio.StreamWriter,
        reader: asyncio.StreamReader,
        rid: str,
        body: dict[str, Any],
        choices: list[Choice],
        chat: bool,
    ) -> bool:
        run = Reader(self, reader, rid)

        async def nothing(*_: Any) -> None:
            return None

        outcome = await self.decode(run, choices, nothing)
        if run.gone:
            return False
        if outcome == "paused":
            err = RequestError(500, "Request is aborted since engine is paused.", None, "internal_error")
            return await self.send_json(writer, 500, self.error_body(err, chat))
        created = int(time.time())
        model = self.reported_model(body.get("model"))
        if chat:
            (c,) = choices
            # JSONResponse(content=response.model_dump()) (api_server.py L546): every field of the
            # models, unset ones as null (protocol.py: ChatMessage, ChatCompletionResponseChoice).
            message = {
                "role": "assistant",
                "content": "".join(c.tokens),
                "multimodal_content": None,
                "reasoning_content": "".join(c.thinking) if self.reasoning else None,
                "audio_content": None,
                # ToolCall(id, type, function=FunctionCall(name, arguments)) (ernie_x1_tool_parser.py)
                "tool_calls": None
                if c.tool is None
                else [
                    {
                        "id": c.tool["id"],
                        "type": "function",
                        "function": {"name": c.tool["name"], "arguments": c.tool["arguments"]},
                    }
                ],
                "prompt_token_ids": None,
                "completion_token_ids": None,
                "prompt_tokens": None,
                "completion_tokens": None,
            }
            choice = {"index": 0, "message": message, "logprobs": None, "draft_logprobs": None}
            choice.update(prompt_logprobs=None, finish_reason=c.finish, speculate_metrics=None)
            out = {
                "id": rid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [choice],
                "usage": c.usage(),
            }
        else:
            n = body.get("n") if isinstance(body.get("n"), int) and body.get("n") >= 1 else 1
            usages = [c.usage() for c in choices]
            # serving_completion.py L749-760: prompt tokens summed over the choices, then divided by n
            prompt_total = sum(u["prompt_tokens"] for u in usages) // n
            completion_total = sum(u["completion_tokens"] for u in usages)
            out = {
                "id": rid,
                "object": "text_completion",
                "created": created,
                "model": model,
                # api_server.py L581, model_dump(): every field of CompletionResponseChoice.
                "choices": [
                    {
                        "index": c.index,
                        "text": "".join(c.tokens),
                        "prompt_token_ids": None,
                        "completion_token_ids": None,
                        "prompt_tokens": None,
                        "completion_tokens": None,
                        "arrival_time": None,  # not set by the full generator (serving_completion.py)
                        "logprobs": None,
                        "draft_logprobs": None,
                        "prompt_logprobs": None,
                        "reasoning_content": "".join(c.thinking) if self.reasoning else None,
                        "finish_reason": c.finish,
                        "tool_calls": None,
                        "speculate_metrics": None,
                    }
                    for c in choices
                ],
                "usage": {
                    "prompt_tokens": prompt_total,
                    "total_tokens": prompt_total + completion_total,
                    "completion_tokens": completion_total,
                    "prompt_tokens_details": {"cached_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": sum(len(c.thinking) for c in choices)},
                },
            }
        return await self.send_json(writer, 200, out)

    async def stream(
        self,
        writer: asyncio.StreamWriter,
        reader: asyncio.StreamReader,
        rid: str,
        body: dict[str, Any],
        choices: list[Choice],
        chat: bool,
    ) -> bool:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        model = self.reported_model(body.get("model"))
        created = int(time.time())
        obj = "chat.completion.chunk" if chat else "text_completion"
        run = Reader(self, reader, rid)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"transfer-encoding: chunked\r\nserver: uvicorn\r\n\r\n"
        )

        async def event(payload: bytes, split: bool = False, stray_space: bool = False) -> None:
            if run.gone:
                return  # nobody reads: decoding goes on (or stops), nothing is written
            # Only the chat stream's opening chunk has a space before the blank line
            # (serving_chat.py L372); every other event has none (serving_chat.py L492, L517, L527,
            # L534; serving_completion.py L515, L605, L645, L654, L663).
            data = b"data: " + payload + (b" \n\n" if stray_space else b"\n\n")
            if split:
                # Cut inside a multi-byte UTF-8 character when there is one, so that one character
                # straddles two chunks (and usually two TCP writes).
                cut = character_cut(data)
                pieces = [data[:cut], data[cut:]]
            else:
                pieces = [data]
            try:
                for piece in pieces:
                    if piece:
                        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        await writer.drain()
            except ConnectionError:
                run.mark_gone()

        head = {"id": rid, "object": obj, "created": created, "model": model}
        choice_of = functools.partial(stream_choice, chat)
        # Several tokens' choices per chunk when asked (serving_chat.py L231-237, L490;
        # serving_completion.py L446-451, L597): a choice's last token sends what is pending.
        batch = body.get("max_streaming_response_tokens")
        if not isinstance(batch, int):
            extra = body.get("metadata") if chat else body.get("suffix")
            batch = (extra if isinstance(extra, dict) else {}).get("max_streaming_response_tokens", 1)
        batch = max(1, batch) if isinstance(batch, int) else 1
        pending: list[dict[str, Any]] = []

        async def usage_chunk(usage: dict[str, Any]) -> None:
            await event(stream_chunk(head, chat, [], usage))

        async def end() -> bool:
            await event(b"[DONE]")
            if run.gone:
                return False
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True

        if chat:
            opening = choice_of(0, chat_opening_delta(), None, opening=True)
            await event(stream_chunk(head, chat, [opening]), stray_space=True)
        sent = 0
        failed: list[str] = []
        error_after = self.error_after
        tag = ERROR_TAG.search(prompt_text(body, chat)) if self.error_tag else None
        if tag is not None:
            error_after = int(tag.group(1))

        async def emit(choice: Choice, field: str, tok: str, last: bool) -> None:
            nonlocal sent
            if sent == self.crash_after:
                self.logs.write(
                    "workerlog.0", "ERROR stand-in: worker process died (FD_STANDIN_CRASH_MID_STREAM)"
                )
                self.logs.write("fastdeploy.log", "ERROR engine worker exited unexpectedly")
                os._exit(7)
            if sent == error_after:
                failed.append("stand-in: generation failed (FD_STANDIN_ERROR_MID_STREAM)")
                raise _StopStream
            sent += 1
            if self.stamp:
                tok = f"{tok}<{time.monotonic():.6f}>"
            finish = choice.finish if last else None
            if chat and field in ("tool_name", "tool_args"):
                pending.append(choice_of(choice.index, tool_call_delta(choice, field, tok), finish))
            elif chat:
                thinking = field == "reasoning_content"
                delta = chat_token_delta("" if thinking else tok, tok if thinking else "")
                pending.append(choice_of(choice.index, delta, finish))
            else:
                text_piece = tok if field == "content" else ""
                thought = tok if field == "reasoning_content" else None
                pending.append(choice_of(choice.index, None, finish, text_piece, thought))
            if len(pending) == batch or last:
                await event(stream_chunk(head, chat, pending), split=True)
                pending.clear()
            if last and include_usage and not chat:
                # One usage chunk per finished choice, with that choice's numbers only
                # (serving_completion.py L618-645).
                await usage_chunk(choice.usage())

        try:
            outcome = await self.decode(run, choices, emit)
        except _StopStream:
            outcome = "error"
        if outcome == "aborted":
            return False
        if outcome in ("error", "paused"):
            # A mid-stream failure: an error event, then [DONE], inside the 200. Chat: ErrorResponse
            # dumped whole, type internal_error, the traceback in the message (serving_chat.py
            # L203-206, L522-527). Completions: str(e), code "400", dumped with exclude_unset
            # (serving_completion.py L652-654).
            message = failed[0] if failed else "Request is aborted since engine is paused."
            if chat:
                text = f"request[{rid}] generate stream error: {message}, " + TRACEBACK.format(
                    kind="RuntimeError", message=message
                )
                error = {"message": text, "type": "internal_error", "param": None, "code": None}
            else:
                error = {"message": message, "type": "internal_error", "code": "400"}
            await event(json.dumps({"error": error}, ensure_ascii=False, separators=(",", ":")).encode())
            return await end()
        for c in choices:
            if not c.steps and c.finish != "abort":  # an aborted choice has sent its last chunk
                delta = chat_token_delta("", "") if chat else None
                await event(stream_chunk(head, chat, [choice_of(c.index, delta, c.finish)]))
                if include_usage and not chat:
                    await usage_chunk(c.usage())
        if include_usage and chat:
            await usage_chunk(choices[0].usage())  # serving_chat.py L497-517: one usage chunk at the end
        return await end()


# FD_STANDIN_ERROR_TAG: a prompt holding this fails its own stream only (soak tests mix such jobs in).
ERROR_TAG = re.compile(r"standin-error-after=(\d+)")


class _StopStream(Exception):
    """FD_STANDIN_ERROR_MID_STREAM: end the stream with an error event."""


# release/2.6's abort route (2.6 api_server.py L479): served in 2.6 mode, never to be reached by a job.
ABORT_ROUTE = ("POST", "/v1/abort_requests")
# Control routes of 2.5 (api_server.py L383-473): served, and never to be reached by a job.
CONTROL_ROUTES = {
    ("POST", "/v1/pause"),
    ("POST", "/v1/resume"),
    ("GET", "/v1/is_paused"),
    ("POST", "/v1/sleep"),
    ("POST", "/v1/wakeup"),
    ("POST", "/v1/update_weights"),
}

GPU_WORKER = """
import os, sys, time
pid_file, life = sys.argv[1], float(sys.argv[2])
with open(pid_file + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(pid_file + ".tmp", pid_file)
time.sleep(life)
"""
GPU_WORKER_PID_FILE = "standin-gpu-worker.pid"


def start_gpu_worker(log_dir: Path) -> subprocess.Popen[bytes]:
    """A "GPU worker" in its own session, as FastDeploy starts its workers (engine/engine.py L641-645,
    ``preexec_fn=os.setsid``; cache managers too: cache_manager/prefix_cache_manager.py L330): a signal
    to the server's process group does not reach it. It writes its pid to ``standin-gpu-worker.pid``
    in the log folder and holds its "GPU" until it is stopped (or FD_STANDIN_GPU_WORKER_LIFE seconds,
    600 by default, pass: a safety net for broken test runs)."""
    life = os.environ.get("FD_STANDIN_GPU_WORKER_LIFE", "").strip() or "600"
    return subprocess.Popen(
        [sys.executable, "-c", GPU_WORKER, str(log_dir / GPU_WORKER_PID_FILE), life],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_gpu_worker(proc: subprocess.Popen[bytes]) -> None:
    """What the engine's ``weakref.finalize`` does on a clean exit only (engine/engine.py L99)."""
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


async def serve(app: StandIn, host: str, port: int) -> None:
    server = await asyncio.start_server(app.serve_client, host, port, backlog=1024)
    metrics_server = None
    metrics_port = getattr(app.args, "metrics_port", None)
    if metrics_port is not None and metrics_port != port:
        # A second listener on 0.0.0.0, whatever --host says (api_server.py L778-783, L904-906).
        metrics_server = await asyncio.start_server(
            functools.partial(app.serve_client, metrics_only=True), "0.0.0.0", metrics_port
        )
        print(f"INFO:     Launching metrics service at http://{host}:{metrics_port}/metrics", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app.logs.write("api_server.log", f"INFO Uvicorn running on http://{host}:{port}")
    print(f"INFO:     Uvicorn running on http://{host}:{port} (Press CTRL+C to quit)", flush=True)
    try:
        async with server:
            await stop.wait()
    finally:
        if metrics_server is not None:
            metrics_server.close()
    app.logs.write("api_server.log", "INFO Shutting down")


def main(argv: list[str] | None = None) -> int:
    release = os.environ.get("FD_STANDIN_RELEASE", "2.5.0")
    args = build_parser(release).parse_args(argv)
    logs = Logs(os.environ.get("FD_LOG_DIR", "log"))
    logs.write("api_server.log", f"INFO stand-in FastDeploy {release} api_server args: {vars(args)}")
    logs.write("fastdeploy.log", f"INFO loading model {args.model}")
    # Workers start while the model loads; SIGTERM now kills the server with Python's default action,
    # so nothing cleans them up (the port opens only after loading: api_server.py L895-913).
    gpu = start_gpu_worker(logs.dir)
    # The first GPU worker reports usage while it initialises its device (worker/gpu_worker.py L83-84).
    report = report_usage_stats(vars(args), release)
    try:
        backend = guided.effective_backend(args, lambda line: logs.write("fastdeploy.log", line))
    except guided.StartError as exc:  # config.py raises while the engine is configured
        stop_gpu_worker(gpu)
        logs.write("fastdeploy.log", f"ERROR {exc}")
        print(f"Exception: {exc}", file=sys.stderr)
        return 1
    crash = os.environ.get("FD_STANDIN_CRASH_AT_START", "")
    if crash.strip():
        time.sleep(env_float("FD_STANDIN_LOAD_DELAY", 0.1))
        stop_gpu_worker(gpu)  # the worker died: that is why the start failed
        logs.write(
            "workerlog.0",
            "ERROR stand-in: simulated failure while loading the model: "
            "out of memory on GPU 0 (FD_STANDIN_CRASH_AT_START)",
        )
        logs.write(
            "fastdeploy.log", "ERROR Failed to launch worker processes, check log/workerlog.* for details."
        )
        print("Failed to launch worker processes, check log/workerlog.* for details.", file=sys.stderr)
        return int(crash)
    time.sleep(env_float("FD_STANDIN_LOAD_DELAY", 0.1))
    if report is not None:
        report.join(USAGE_WAIT)  # its one attempt is over before the port opens (see usage_lib)
    logs.write("workerlog.0", "INFO model loaded, KV cache profiled")
    app = StandIn(args, release, logs, backend)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(app, args.host, args.port))
    finally:
        stop_gpu_worker(gpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
