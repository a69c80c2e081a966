"""A load-balancing worker as the runtime's LB mode is specified (the contract shared with the runtime's
branch, docs/deploy-load-balancing.md): the builder's LB client side (`test`, `deploy --wait`) is tested
against it here; the Docker end-to-end test runs the real image once the runtime serves this mode.

- Health at HEALTH_CHECK_PATH (/ping): 204 while loading (the first `loading_polls` checks), 200 when
  ready, 503 once dead (RunPod's reading: runpod/docs serverless/load-balancing/overview.mdx, "Health
  checks": 200 healthy, 204 initializing, anything else unhealthy).
- The load balancer's routes of worker_runtime/config/routes.py: OpenAI bodies (`stream: true` answers
  SSE chunks ending `data: [DONE]`; a GET answers the model list); a native route takes a queue job's
  `input` object (or `{"input": {...}}`) and answers the OpenAI response (or its SSE chunks); errors are
  an HTTP status with an OpenAI error body; every other path 404.

Run as a program (`python3 lb_contract_server.py`, what the Docker test's container does, with the
route table's package next to it) it serves on
0.0.0.0:PORT (default 80), health at HEALTH_CHECK_PATH, with LB_LOADING_POLLS checks answered 204 and,
with LB_DEAD=1, 503 for every check.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.served import ServedHttp
from worker_runtime.config import routes

MODEL = "baidu/ERNIE-4.5-0.3B-Paddle"
WORDS = ["Hello", "!"]


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass
class LbContractServer(ServedHttp):
    loading_polls: int = 2
    dead: bool = False
    health_path: str = "/ping"
    fail: dict[str, tuple[int, str]] = field(default_factory=dict)  # path -> (status, message)
    no_done: bool = False  # end streams without data: [DONE]
    seen: list[Seen] = field(default_factory=list)
    address: tuple[str, int] = ("127.0.0.1", 0)

    def __post_init__(self) -> None:
        super().__init__(self._handler(), self.address)
        self.health_checks = 0

    def paths(self, method: str | None = None) -> list[str]:
        return [s.path for s in self.seen if method is None or s.method == method]

    # --- answers ------------------------------------------------------------------------------------
    def health(self) -> int:
        self.health_checks += 1
        if self.dead:
            return 503
        return 204 if self.health_checks <= self.loading_polls else 200

    @staticmethod
    def completion(kind: str, stream: bool) -> list[dict[str, Any]] | dict[str, Any]:
        chat = kind == "chat"
        obj = "chat.completion" if chat else "text_completion"
        if not stream:
            text = "".join(WORDS)
            choice = {"index": 0, "finish_reason": "stop"}
            choice |= {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
            return {"id": "cmpl-1", "object": obj, "created": 1, "model": MODEL, "choices": [choice]}
        chunks = []
        for i, word in enumerate(WORDS):
            choice = {"index": 0, "finish_reason": "stop" if i == len(WORDS) - 1 else None}
            choice |= {"delta": {"content": word}} if chat else {"text": word}
            chunks.append(
                {"id": "cmpl-1", "object": obj + (".chunk" if chat else ""), "created": 1, "model": MODEL,
                 "choices": [choice]}
            )  # fmt: skip
        return chunks

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any, bool]:
        """(status, JSON body or chunk list, streamed)."""
        if path in self.fail:
            status, message = self.fail[path]
            return status, {"error": {"message": message, "type": "invalid_request_error"}}, False
        if method == "GET" and path in routes.paths(routes.LOAD_BALANCER, method="GET"):
            return 200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]}, False
        if method == "POST" and path in routes.paths(routes.LOAD_BALANCER, method="POST"):
            native = path in routes.paths(routes.LOAD_BALANCER, routes.NATIVE)
            if native and isinstance(body, dict) and isinstance(body.get("input"), dict):
                body = body["input"]
            if not isinstance(body, dict):
                return 400, {"error": {"message": "the body must be a JSON object"}}, False
            kind = "chat" if path == "/v1/chat/completions" or "messages" in body else "text"
            stream = body.get("stream") is True
            return 200, self.completion(kind, stream), stream
        return 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}}, False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        lb = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                path = self.path.split("?", 1)[0]
                lb.seen.append(Seen(self.command, path, self.headers.get("Authorization"), body))
                if self.command == "GET" and path == lb.health_path:
                    self.send_response(lb.health())
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, answer, stream = lb.answer(self.command, path, body)
                if not stream:
                    data = json.dumps(answer).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(status)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in answer:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                if not lb.no_done:
                    self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = _any

        return Handler


if __name__ == "__main__":
    print(f"load-balancing contract worker on port {os.environ.get('PORT', '80')}", flush=True)
    LbContractServer(
        loading_polls=int(os.environ.get("LB_LOADING_POLLS", "2")),
        dead=os.environ.get("LB_DEAD") == "1",
        health_path=os.environ.get("HEALTH_CHECK_PATH", "/ping"),
        address=("0.0.0.0", int(os.environ.get("PORT", "80"))),
    ).serve()
