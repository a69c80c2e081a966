"""The one error shape a failed job carries.

A failed job's ``error`` is JSON text of an OpenAI error object plus the HTTP status:
``{"message": ..., "type": ..., "param": ..., "code": ..., "status": 400}``. It is text because the
RunPod SDK turns a yielded error into ``str(error)``; JSON text survives that unchanged, so clients
can tell a bad request (4xx) from an overloaded (429) or broken (5xx) engine.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

ACCEPTED_INPUTS = (
    'Accepted job inputs: {"messages": [...]} (chat) or {"prompt": "..."} (completion), each with '
    'optional "sampling_params": {...} and "stream": true/false; or the OpenAI passthrough '
    '{"openai_route": "/v1/...", "openai_input": {...}} (no openai_input = GET, e.g. /v1/models).'
)


# Characters of caller text that never go out as they are: C0/C1 controls (a newline would start a
# forged log line), DEL, the Unicode line separators, and lone surrogates (not encodable in UTF-8).
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
_ESCAPES.update({c: f"\\u{c:04x}" for c in range(0xD800, 0xE000)})
SHOWN_LENGTH = 200  # characters of one piece of caller text in a message or a log line


def shown(value: Any, limit: int = SHOWN_LENGTH) -> str:
    """Caller text as it may appear in a message or a log line: escaped, and cut at ``limit``."""
    text = value if isinstance(value, str) else str(value)
    cut = len(text) > limit
    text = text[:limit].translate(_ESCAPES)
    return text + "…" if cut else text


def safe_dumps(obj: Any) -> str:
    """JSON text that encodes in UTF-8 whatever ``obj`` holds (non-ASCII kept when it can be)."""
    text = json.dumps(obj, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate, only ever inside a JSON string: its backslash escape is the JSON escape.
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def error_id() -> str:
    """An id that a caller's message and the worker's log line share, so that one finds the other."""
    return "err-" + secrets.token_hex(6)


def internal_error(
    what: str, exc: BaseException, status: int = 500, code: str = "internal_error"
) -> JobError:
    """A failure inside the worker: a stable message and an id for the caller, the details (exception
    text) in the worker's log under that id, once."""
    ident = error_id()
    print(f"{ident}: {what}: {type(exc).__name__}: {shown(exc, 2000)}", flush=True)
    return JobError(status, f"{what} (id {ident}; the worker's log has the details)", "server_error", code)


class JobError(Exception):
    """A job failure with an HTTP status and an OpenAI error object."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | int | None = None,
        param: str | None = None,
        engine_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.engine_status = engine_status  # the engine's own HTTP status, when we changed it

    def openai_error(self) -> dict[str, Any]:
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code}

    def sse_event(self) -> str:
        """The SSE event that ends a failed OpenAI stream: the error with the job's status."""
        body = {"error": {**self.openai_error(), "status": self.status}}
        return f"data: {safe_dumps(body)}\n\n"

    def payload(self) -> str:
        extra = {} if self.engine_status is None else {"engine_status": self.engine_status}
        return safe_dumps({**self.openai_error(), "status": self.status, **extra})

    @classmethod
    def from_payload(cls, text: str) -> JobError:
        """Rebuild from ``payload()`` text (or any other error string, as a 500)."""
        try:
            obj = json.loads(text)
        except (TypeError, ValueError):
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("status"), int) and "message" in obj:
            engine_status = obj.get("engine_status")
            return cls(
                obj["status"],
                str(obj["message"]),
                obj.get("type") or "server_error",
                obj.get("code"),
                obj.get("param"),
                engine_status if isinstance(engine_status, int) else None,
            )
        return cls(500, str(text), "server_error", "internal_error")


def input_error(message: str) -> JobError:
    return JobError(400, f"{message}. {ACCEPTED_INPUTS}", "invalid_request_error", "invalid_input")


# FastDeploy answers a request it refuses while preparing it with HTTP 500, typed as a request error:
# "invalid_request_error" (chat, and completions' generic errors), "invalid_request" (completions'
# parameter errors), or code "model_not_support" (a model name it does not serve, typed
# "internal_error"). Such a job fails with 400; the engine's 500 is kept in "engine_status". Any other
# 500 is a server error and stays 500.
REQUEST_ERROR_TYPES = ("invalid_request_error", "invalid_request")
REQUEST_ERROR_CODES = ("model_not_support",)
TRACEBACK_MARK = "Traceback (most recent call last):"


def strip_traceback(message: str) -> str:
    """The engine's message without the Python traceback FastDeploy appends to some of them."""
    head, mark, _ = message.partition(TRACEBACK_MARK)
    if not mark:
        return message
    return head.rstrip().rstrip(",").rstrip()


def engine_http_error(status: int, body: Any) -> JobError:
    """The engine's non-200 answer, its OpenAI error fields kept (request errors sent as 500: 400)."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):  # 2.3+: {"error": {"message", "type", "param", "code"}}
        message = strip_traceback(str(err.get("message", "")))
        type_ = err.get("type") or _type_for(status)
        if status == 500 and (type_ in REQUEST_ERROR_TYPES or err.get("code") in REQUEST_ERROR_CODES):
            return JobError(
                400,
                message,
                "invalid_request_error",
                err.get("code"),
                err.get("param"),
                engine_status=status,
            )
        return JobError(status, message, type_, err.get("code"), err.get("param"))
    if isinstance(body, dict) and isinstance(body.get("detail"), dict):  # 2.0/2.1 chat
        body = body["detail"]
    if isinstance(body, dict) and "message" in body:  # 2.0/2.1: {"object": "error", "message", "code"}
        return JobError(status, str(body["message"]), _type_for(status), body.get("code"))
    if isinstance(body, dict) and "detail" in body:  # 429 and framework errors
        detail = body["detail"]
        message = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
        code = "too_many_requests" if status == 429 else None
        return JobError(status, message, _type_for(status), code)
    if isinstance(err, str):  # 401 {"error": "Unauthorized"}
        return JobError(status, err, _type_for(status))
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return JobError(status, f"FastDeploy answered HTTP {status}: {text[:2000]}", _type_for(status))


def _type_for(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if status == 401:
        return "authentication_error"
    return "invalid_request_error" if status < 500 else "server_error"
