"""RunPod's job API shape in front of the runtime's `--local` server: `/v2/<endpoint id>/<route>` is
forwarded to `<local server>/<route>` (streamed, so `/openai/v1` SSE stays incremental), the bearer key is
checked, and `/health` answers with RunPod's `workers` counts (the local server has none)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

import requests

from tests.served import ServedHttp


class JobApiProxy(ServedHttp):
    def __init__(self, upstream: str, api_key: str, ready_workers: int = 1) -> None:
        self.upstream = upstream.rstrip("/")
        self.api_key = api_key
        self.ready_workers = ready_workers
        self.seen: list[tuple[str, str, str]] = []  # (method, endpoint id, route)
        self.auth_headers: list[str] = []
        super().__init__(self._handler())

    @property
    def base(self) -> str:
        """What RUNPOD_ENDPOINT_BASE_URL is set to."""
        return f"{self.url}/v2"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _any(self) -> None:
                parts = self.path.split("/", 3)  # "", "v2", id, route
                if len(parts) < 4 or parts[1] != "v2":
                    return self._reply(404, {"error": "not found"})
                endpoint, route = parts[2], parts[3]
                proxy.seen.append((self.command, endpoint, route))
                proxy.auth_headers.append(self.headers.get("Authorization", ""))
                if self.headers.get("Authorization") != f"Bearer {proxy.api_key}":
                    return self._reply(401, {"error": "Unauthorized"})
                if route == "health":
                    n = proxy.ready_workers
                    workers = {"idle": n, "initializing": 0, "ready": n, "running": 0, "throttled": 0,
                               "unhealthy": 0}  # fmt: skip
                    jobs = {"completed": 0, "failed": 0, "inProgress": 0, "inQueue": 0, "retried": 0}
                    return self._reply(200, {"jobs": jobs, "workers": workers})
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
                with requests.request(
                    self.command, f"{proxy.upstream}/{route}", data=data, headers=headers, stream=True,
                    timeout=120,
                ) as resp:  # fmt: skip
                    self.send_response(resp.status_code)
                    self.send_header("Content-Type", resp.headers.get("Content-Type", "application/json"))
                    self.end_headers()  # HTTP/1.0: the body ends when the connection closes
                    for chunk in resp.raw.stream(1024, decode_content=True):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                return None

            do_GET = do_POST = _any

        return Handler
