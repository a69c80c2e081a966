"""The tests' fake HTTP servers (hub, registry, RunPod's APIs, a load-balancing worker) on a thread of
their own, stopped at once: `serve_forever` looks for a shutdown request between polls, and its default
poll of 0.5 s made every `stop()` wait up to half a second, per test.

Standalone (the standard library only): a Docker test copies it into an image beside
tests/deploy/lb_contract_server.py."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

POLL_SECONDS = 0.01

Served = TypeVar("Served", bound="ServedHttp")


class ServedHttp:
    """A ThreadingHTTPServer for `handler` on `address` (a free port of 127.0.0.1 by default), served on a
    daemon thread from `start()` until `stop()`."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], address: tuple[str, int] = ("127.0.0.1", 0)
    ) -> None:
        self.server = ThreadingHTTPServer(address, handler)
        self.thread = threading.Thread(target=self.serve, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self) -> None:
        """Serve on the calling thread (a program's main thread) until `stop()`."""
        self.server.serve_forever(poll_interval=POLL_SECONDS)

    def start(self: Served) -> Served:
        self.thread.start()
        return self

    def stop(self) -> None:
        # shutdown() waits for serve_forever to end: it would wait forever for one that never started.
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()
