"""Stand-in for ``fastdeploy.entrypoints.openai.api_server`` (see the package docstring for knobs).

A small asyncio HTTP/1.1 server (keep-alive, chunked SSE) that answers like FastDeploy 2.x:
``data: {...} \\n\\n`` events with the stray space, a first chunk with role and empty contents,
``arrival_time``, a usage-only final chunk, error events inside a 200 stream, ``[DONE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

FLAGS_FILE = Path(__file__).resolve().parents[2] / "_flags.json"

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


def build_parser(release: str) -> argparse.ArgumentParser:
    """An argparse parser accepting exactly the flags of ``release``."""
    table = json.loads(FLAGS_FILE.read_text(encoding="utf-8"))
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


class RequestError(Exception):
    def __init__(self, status: int, message: str, code: str, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.type = status, message, code, type_


# ----------------------------------------------------------------------------- server


class StandIn:
    def __init__(self, args: argparse.Namespace, release: str, logs: Logs) -> None:
        self.args = args
        self.release = release
        self.logs = logs
        self.model_path: str = args.model
        self.served: str | None = getattr(args, "served_model_name", None)
        self.max_model_len: int = args.max_model_len or 2048
        self.max_concurrency: int = getattr(args, "max_concurrency", None) or 512
        self.reasoning = bool(getattr(args, "reasoning_parser", None))
        self.api_keys: list[str] = list(getattr(args, "api_key", None) or [])
        self.in_flight = 0
        self.new_errors = tuple(int(p) for p in release.split(".")[:2]) >= (2, 3)
        self.token_delay = env_float("FD_STANDIN_TOKEN_DELAY")
        self.crash_after = env_int("FD_STANDIN_CRASH_MID_STREAM", -1)
        self.error_after = env_int("FD_STANDIN_ERROR_MID_STREAM", -1)
        self.forced_status = env_int("FD_STANDIN_HTTP_STATUS", 0)
        self.too_many = os.environ.get("FD_STANDIN_TOO_MANY", "") == "1"
        self.hang = os.environ.get("FD_STANDIN_HANG", "") == "1"
        # Benchmarks: each streamed token ends with "<emission time>" (time.monotonic(), system-wide).
        self.stamp = os.environ.get("FD_STANDIN_STAMP_TOKENS", "") == "1"

    # -- protocol helpers

    def error_body(self, err: RequestError, chat: bool) -> dict[str, Any]:
        if self.new_errors:
            return {"error": {"message": err.message, "type": err.type, "param": None, "code": err.code}}
        body = {"object": "error", "message": err.message, "code": err.status}
        return {"detail": body} if chat else body

    def reported_model(self, requested: Any) -> str:
        if self.served is None:
            return self.model_path
        return self.served

    def check(self, body: Any, chat: bool) -> tuple[dict[str, Any], str]:
        if not isinstance(body, dict):
            raise RequestError(400, "request body must be a JSON object", "invalid_value")
        if chat and not isinstance(body.get("messages"), list):
            raise RequestError(400, "messages is required", "missing_required_parameter")
        if not chat and "prompt" not in body:
            raise RequestError(400, "prompt is required", "missing_required_parameter")
        model = body.get("model")
        if self.served is not None and model not in (None, self.served, "default"):
            raise RequestError(
                400, f"Unsupported model: {model}, support {self.served} or default", "model_not_support"
            )
        if body.get("stream_options") is not None and not body.get("stream"):
            raise RequestError(400, "Stream options can only be defined when `stream=True`.", "invalid_value")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (
            not isinstance(max_tokens, int)
            or isinstance(max_tokens, bool)
            or not 1 <= max_tokens < self.max_model_len
        ):
            raise RequestError(400, f"max_tokens can be defined [1, {self.max_model_len}).", "invalid_value")
        text = prompt_text(body, chat)
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

    # -- HTTP plumbing

    async def serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
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
                keep = await self.route(method, target.split("?", 1)[0], headers, raw, writer)
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

    async def route(
        self, method: str, path: str, headers: dict[str, str], raw: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        if path == "/health" and method == "GET":
            return await self.send(writer, 200, b"")
        if path == "/metrics" and method == "GET":
            text = f"fastdeploy:num_requests_running {self.in_flight}\n".encode()
            return await self.send(writer, 200, text, "text/plain")
        if not path.startswith("/v1/"):
            return await self.send_json(writer, 404, {"detail": "Not Found"})
        if self.api_keys and headers.get("authorization", "") not in [f"Bearer {k}" for k in self.api_keys]:
            return await self.send_json(writer, 401, {"error": "Unauthorized"})
        if self.hang:
            await asyncio.Event().wait()  # never answers (the client must time out)
        if self.too_many or self.in_flight >= self.max_concurrency:
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
            self.in_flight += 1
            try:
                try:
                    body = json.loads(raw.decode("utf-8")) if raw else None
                    body, text = self.check(body, chat)
                except ValueError:
                    err = RequestError(
                        422 if not self.new_errors else 400, "invalid JSON body", "invalid_value"
                    )
                    return await self.send_json(writer, err.status, self.error_body(err, chat))
                except RequestError as err:
                    self.logs.write("api_server.log", f"ERROR request rejected: {err.message}")
                    return await self.send_json(writer, err.status, self.error_body(err, chat))
                if body.get("stream"):
                    return await self.stream(writer, body, text, chat)
                return await self.complete(writer, body, text, chat)
            finally:
                self.in_flight -= 1
        return await self.send_json(writer, 404, {"detail": "Not Found"})

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

    def plan(self, body: dict[str, Any], text: str) -> tuple[list[str], list[str], str, dict[str, Any]]:
        thinking, answer = tokens_for(text, self.reasoning)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str)]
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        budget = None if max_tokens is None else max(0, max_tokens - len(thinking))
        thinking = thinking if max_tokens is None else thinking[:max_tokens]
        tokens, finish = apply_limits(answer, budget, stop)
        if budget == 0:
            tokens, finish = [], "length"
        prompt_tokens = len(text) // 4 + 1
        n = len(thinking) + len(tokens)
        usage = {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + n,
            "completion_tokens": n,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": len(thinking)},
        }
        return thinking, tokens, finish, usage

    async def complete(
        self, writer: asyncio.StreamWriter, body: dict[str, Any], text: str, chat: bool
    ) -> bool:
        thinking, tokens, finish, usage = self.plan(body, text)
        if self.token_delay:
            await asyncio.sleep(self.token_delay * (len(thinking) + len(tokens)))
        created = int(time.time())
        model = self.reported_model(body.get("model"))
        if chat:
            message = {
                "role": "assistant",
                "content": "".join(tokens),
                "multimodal_content": None,
                "reasoning_content": "".join(thinking) if self.reasoning else None,
                "tool_calls": None,
            }
            out = {
                "id": f"chatcmpl-{uuid.uuid4()}",
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage,
            }
        else:
            out = {
                "id": f"cmpl-{uuid.uuid4()}",
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "text": "".join(tokens),
                        "logprobs": None,
                        "finish_reason": finish,
                        "reasoning_content": "".join(thinking) if self.reasoning else None,
                    }
                ],
                "usage": usage,
            }
        return await self.send_json(writer, 200, out)

    async def stream(self, writer: asyncio.StreamWriter, body: dict[str, Any], text: str, chat: bool) -> bool:
        thinking, tokens, finish, usage = self.plan(body, text)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        model = self.reported_model(body.get("model"))
        created = int(time.time())
        rid = f"chatcmpl-{uuid.uuid4()}" if chat else f"cmpl-{uuid.uuid4()}"
        obj = "chat.completion.chunk" if chat else "text_completion"
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"transfer-encoding: chunked\r\nserver: uvicorn\r\n\r\n"
        )

        async def event(payload: bytes, split: bool = False) -> None:
            data = b"data: " + payload + b" \n\n"  # FastDeploy's stray space before the blank line
            if split:
                # Cut inside a multi-byte UTF-8 character when there is one, so that one character
                # straddles two chunks (and usually two TCP writes).
                cut = next((i for i, b in enumerate(data) if b & 0xC0 == 0x80), len(data) // 2)
                pieces = [data[:cut], data[cut:]]
            else:
                pieces = [data]
            for piece in pieces:
                if piece:
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    await writer.drain()

        def chunk(
            delta: dict[str, Any] | None,
            finish_reason: str | None,
            text_piece: str = "",
            thought: str | None = None,
        ) -> bytes:
            if chat:
                choice: dict[str, Any] = {
                    "index": 0,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                    "arrival_time": time.time(),
                }
            else:
                choice = {
                    "index": 0,
                    "text": text_piece,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                    "arrival_time": time.time(),
                }
                if self.reasoning:
                    choice["reasoning_content"] = thought
            return json.dumps(
                {"id": rid, "object": obj, "created": created, "model": model, "choices": [choice]},
                ensure_ascii=False,
            ).encode("utf-8")

        if chat:
            first = {"role": "assistant", "content": "", "reasoning_content": ""}
            await event(chunk(first, None))
        steps = [("reasoning_content", t) for t in thinking] + [("content", t) for t in tokens]
        for sent, (field, tok) in enumerate(steps):
            if sent == self.crash_after:
                self.logs.write(
                    "workerlog.0", "ERROR stand-in: worker process died (FD_STANDIN_CRASH_MID_STREAM)"
                )
                self.logs.write("fastdeploy.log", "ERROR engine worker exited unexpectedly")
                os._exit(7)
            if sent == self.error_after:
                err = {
                    "error": {
                        "message": "stand-in: generation failed (FD_STANDIN_ERROR_MID_STREAM)",
                        "type": "server_error",
                        "param": None,
                        "code": "internal_error",
                    }
                }
                await event(json.dumps(err).encode())
                await event(b"[DONE]")
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                return True
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
            if self.stamp:
                tok = f"{tok}<{time.monotonic():.6f}>"
            last = sent == len(steps) - 1
            if chat:
                delta = {
                    "role": "assistant",
                    "content": tok if field == "content" else "",
                    "reasoning_content": tok if field == "reasoning_content" else "",
                    "tool_calls": None,
                }
                await event(chunk(delta, finish if last else None), split=True)
            else:
                text_piece = tok if field == "content" else ""
                thought = tok if field == "reasoning_content" else None
                await event(chunk(None, finish if last else None, text_piece, thought), split=True)
        if not steps:
            delta = {"role": "assistant", "content": "", "reasoning_content": ""}
            await event(chunk(delta, finish) if chat else chunk(None, finish, ""))
        if include_usage:
            final = {
                "id": rid,
                "object": obj,
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await event(json.dumps(final).encode())
        await event(b"[DONE]")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


async def serve(app: StandIn, host: str, port: int) -> None:
    server = await asyncio.start_server(app.serve_client, host, port, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app.logs.write("api_server.log", f"INFO Uvicorn running on http://{host}:{port}")
    print(f"INFO:     Uvicorn running on http://{host}:{port} (Press CTRL+C to quit)", flush=True)
    async with server:
        await stop.wait()
    app.logs.write("api_server.log", "INFO Shutting down")


def main(argv: list[str] | None = None) -> int:
    release = os.environ.get("FD_STANDIN_RELEASE", "2.5.0")
    args = build_parser(release).parse_args(argv)
    logs = Logs(os.environ.get("FD_LOG_DIR", "log"))
    logs.write("api_server.log", f"INFO stand-in FastDeploy {release} api_server args: {vars(args)}")
    logs.write("fastdeploy.log", f"INFO loading model {args.model}")
    crash = os.environ.get("FD_STANDIN_CRASH_AT_START", "")
    if crash.strip():
        time.sleep(env_float("FD_STANDIN_LOAD_DELAY", 0.1))
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
    logs.write("workerlog.0", "INFO model loaded, KV cache profiled")
    app = StandIn(args, release, logs)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(app, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
