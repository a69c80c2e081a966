"""One pooled aiohttp session to the engine for the worker's lifetime."""

from __future__ import annotations

import asyncio

import aiohttp


class EngineClient:
    def __init__(self, base_url: str, request_timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=request_timeout, connect=min(10.0, request_timeout))
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        """The shared session, created on first use inside the running loop (the SDK makes its own)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=75, ttl_dns_cache=None)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self.timeout, auto_decompress=False
            )
            self._loop = loop
        return self._session

    def url(self, route: str) -> str:
        return self.base_url + route

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
