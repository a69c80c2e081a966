"""Units of the engine's supervision and the handler's view of it (death, concurrency, HTTP details),
and of the local server's job bookkeeping."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from worker_runtime.engine.client import EngineClient
from worker_runtime.engine.supervisor import Supervisor
from worker_runtime.serve.handler import HandlerState
from worker_runtime.serve.local import LocalServer


def short_lived(tmp_path, code: int = 3) -> Supervisor:
    """A supervisor whose 'engine' exits at once with ``code``; returned after it died."""
    sup = Supervisor(
        [sys.executable, "-c", f"import sys; sys.exit({code})"],
        {},
        "http://127.0.0.1:9/health",
        str(tmp_path),
    )
    sup.start()
    assert sup.died.wait(10)
    return sup


def test_on_death_registered_after_the_death_is_still_called(tmp_path) -> None:
    sup = short_lived(tmp_path)
    called = threading.Event()
    codes: list[int] = []

    def callback(code: int) -> None:
        codes.append(code)
        called.set()

    sup.on_death(callback)
    assert called.wait(5), "a death before on_death() went unnoticed"
    assert codes == [3]


def test_on_death_before_the_death_is_called_once(tmp_path) -> None:
    sup = Supervisor(
        [sys.executable, "-c", "import sys, time; time.sleep(0.3); sys.exit(5)"], {}, "", str(tmp_path)
    )
    codes: list[int] = []
    sup.start()
    sup.on_death(codes.append)
    assert sup.died.wait(10)
    threading.Event().wait(0.2)
    assert codes == [5]


def test_on_death_not_called_after_a_requested_stop(tmp_path) -> None:
    sup = short_lived(tmp_path)
    sup.stop()
    codes: list[int] = []
    sup.on_death(codes.append)
    threading.Event().wait(0.2)
    assert codes == []


def test_concurrency_modifier_is_zero_once_the_engine_died(tmp_path) -> None:
    sup = Supervisor([sys.executable, "-c", "import time; time.sleep(30)"], {}, "", str(tmp_path))
    sup.start()
    try:
        runtime = HandlerState(EngineClient("http://127.0.0.1:9", 5.0), "m", 6, sup)
        assert runtime.concurrency_modifier(0) == 6
        assert runtime.dead_error() is None
    finally:
        sup.stop_grace = 1.0
        sup.stop()
    assert runtime.concurrency_modifier(3) == 0
    assert runtime.dead_error() is not None
    assert HandlerState(EngineClient("http://127.0.0.1:9", 5.0), "m", 4).concurrency_modifier(1) == 4


def test_engine_client_asks_for_identity_encoding_and_idle_timeout() -> None:
    seen: list[str | None] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Accept-Encoding"))
        return web.json_response({"ok": True})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/v1/models", echo)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        client = EngineClient(f"http://127.0.0.1:{port}", 7.0)
        try:
            async with client.session().get(client.url("/v1/models")) as resp:
                assert resp.status == 200
        finally:
            await client.close()
            await runner.cleanup()

    asyncio.run(main())
    assert seen == ["identity"]
    timeout = EngineClient("http://x", 7.0).timeout
    assert timeout.total is None and timeout.sock_read == 7.0 and timeout.sock_connect == 7.0


def test_local_server_keeps_a_bounded_number_of_finished_jobs() -> None:
    async def handler(job: dict) -> AsyncIterator[dict]:
        yield {"n": job["input"]}

    async def main() -> None:
        server = LocalServer(handler, 2, max_finished=3, finished_ttl=3600)
        async with TestClient(TestServer(server.app())) as client:
            ids = []
            for n in range(5):
                resp = await client.post("/runsync", json={"input": n})
                body = await resp.json()
                assert body["status"] == "COMPLETED" and body["output"] == [{"n": n}]
                ids.append(body["id"])
            assert set(server.jobs) == set(ids[2:])
            assert (await client.get(f"/status/{ids[0]}")).status == 404
            assert (await (await client.get(f"/status/{ids[4]}")).json())["output"] == [{"n": 4}]
            server.finished_ttl = 0.0  # every finished job has now outlived its TTL
            assert (await client.post("/run", json={"input": 9})).status == 200
            assert not set(ids) & set(server.jobs)

    asyncio.run(main())
