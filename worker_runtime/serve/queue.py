"""A queue endpoint: jobs come through the runpod SDK (platform mode; SDK flags such as
``--rp_serve_api`` pass through in ``sys.argv``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

# At its own default, DEBUG, the runpod SDK prints every streamed output twice and a line per stream
# POST: work per yield on the one loop that relays all of this
# worker's streams, and logs that hold the whole answer. INFO keeps its per-job lines.
SDK_LOG_LEVEL = "INFO"


def sdk_log_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The runpod SDK's log level, set before it is imported (it reads it then): the user's
    RUNPOD_LOG_LEVEL, else their RUNPOD_DEBUG_LEVEL (the SDK's older name), else ``SDK_LOG_LEVEL``."""
    level = environ.get("RUNPOD_LOG_LEVEL") or environ.get("RUNPOD_DEBUG_LEVEL") or SDK_LOG_LEVEL
    return {"RUNPOD_LOG_LEVEL": level}


def serve_queue(handler: Callable[..., Any], concurrency_modifier: Callable[[int], int]) -> None:
    """Hand ``handler`` to the runpod SDK, which polls for jobs until the worker is stopped."""
    os.environ.update(sdk_log_env(os.environ))
    import runpod

    runpod.serverless.start(
        {
            "handler": handler,
            "return_aggregate_stream": True,
            "concurrency_modifier": concurrency_modifier,
        }
    )
