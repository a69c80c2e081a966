"""The cost floor of any handler, shared by the benchmarks: the engine's bytes forwarded as they come
(decoded, as JSON needs text), nothing parsed, events cut wherever a read ends."""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator, Callable
from typing import Any


def bare_make_handler(runtime: Any) -> Callable[[dict[str, Any]], AsyncIterator[str]]:
    from worker_runtime.serve.normalize import normalize

    async def handler(job: dict[str, Any]) -> AsyncIterator[str]:
        request = normalize(job["input"], runtime.model_name)
        session = runtime.client.session()
        url = runtime.client.url(request.route)
        async with session.request(request.method, url, json=request.body) as resp:
            decoder = codecs.getincrementaldecoder("utf-8")()
            async for data in resp.content.iter_any():
                text = decoder.decode(data)
                if text:
                    yield text

    return handler
