"""One pooled aiohttp session to the engine for the worker's lifetime."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import aiohttp

CONNECT_TIMEOUT = 10.0  # the engine listens on loopback: connecting is immediate or it is gone
# FastDeploy runs under gunicorn with its default keepalive: an idle connection is closed by the engine
# 2 s after its last answer (it sets no keepalive). A pooled connection reused
# just as the engine closes it fails the request before any answer, so ours are dropped well before.
ENGINE_IDLE_CLOSE = 2.0
POOL_IDLE_SECONDS = 1.0


class SentOn:
    """Filled in while a request is sent (``trace_request_ctx``): whether it went on a reused
    connection, the only case where a connection lost before any answer may be retried."""

    __slots__ = ("reused",)

    def __init__(self) -> None:
        self.reused = False


async def _on_reuse(_session: object, ctx: SimpleNamespace, _params: object) -> None:
    sent = ctx.trace_request_ctx
    if isinstance(sent, SentOn):
        sent.reused = True


def _reuse_trace() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_connection_reuseconn.append(_on_reuse)
    trace.freeze()
    return trace


class EngineClient:
    def __init__(self, base_url: str, request_timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.request_timeout = request_timeout
        # An idle timeout, not a total one: a non-stream answer comes in one piece after generation
        # (so sock_read is the time to the whole answer), while a stream that keeps producing tokens
        # may run as long as it likes; only a silence longer than REQUEST_TIMEOUT fails it.
        self.timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=min(CONNECT_TIMEOUT, request_timeout), sock_read=request_timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closer: asyncio.Task[None] | None = None

    def session(self, fresh: bool = False) -> aiohttp.ClientSession:
        """The shared session, created on first use inside the running loop (the SDK makes its own);
        ``fresh``: its twin that opens a new connection for every request (see handler._send)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = self._new_session(
                aiohttp.TCPConnector(limit=0, keepalive_timeout=POOL_IDLE_SECONDS, ttl_dns_cache=None),
                [_reuse_trace()],
            )
            self._fresh = self._new_session(aiohttp.TCPConnector(limit=0, force_close=True))
            self._loop = loop
            # The loop is the SDK's (or the local server's), which never closes our sessions: they are
            # closed when that loop shuts down (asyncio.run cancels the tasks left), so the worker
            # does not stop with "Unclosed client session" / "Unclosed connector" warnings.
            self._closer = loop.create_task(_close_at_loop_end(self._session, self._fresh))
        assert self._fresh is not None
        return self._fresh if fresh else self._session

    def _new_session(
        self, connector: aiohttp.TCPConnector, trace_configs: list[aiohttp.TraceConfig] | None = None
    ) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=connector,
            trace_configs=trace_configs,
            timeout=self.timeout,
            auto_decompress=False,
            # Bodies are relayed as received: ask for them uncompressed (aiohttp offers gzip/br).
            headers={"Accept-Encoding": "identity"},
        )

    def url(self, route: str) -> str:
        return self.base_url + route

    async def close(self) -> None:
        for session in (self._session, self._fresh):
            if session is not None and not session.closed:
                await session.close()
        self._session = self._fresh = None
        if self._closer is not None:
            self._closer.cancel()
        self._closer = None


async def _close_at_loop_end(*sessions: aiohttp.ClientSession) -> None:
    try:
        await asyncio.get_running_loop().create_future()  # until cancelled
    finally:
        for session in sessions:
            await session.close()
