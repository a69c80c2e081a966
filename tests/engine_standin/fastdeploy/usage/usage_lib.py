"""Stand-in for ``fastdeploy.usage.usage_lib``: the usage report FastDeploy sends at startup.

Mirrors FastDeploy's source (``path Lnn`` relative to its ``fastdeploy`` package; release/2.5 at
474174bb, unchanged on release/2.6 at 7198b588):

- on by default; only ``DO_NOT_TRACK=1`` turns it off (``envs.py`` L175, ``usage/usage_lib.py`` L59-72);
- sent by the first GPU worker of a node while it initialises its device, before the model loads
  (``worker/gpu_worker.py`` L83-84), from a daemon thread (``usage/usage_lib.py`` L280-289);
- one JSON POST to ``FD_USAGE_STATS_SERVER`` (``envs.py`` L177-179; default
  ``http://fd-stats.baidu-int.com/fd/report/periodic`` in 2.5, ``http://10.169.17.184:8089/...`` on
  release/2.6 ``envs.py`` L205-207), read when the module is imported (``usage/usage_lib.py`` L42); a
  failure is ignored (L336-341). The body: hardware, cloud provider (``RUNPOD_DC_ID`` -> ``RUNPOD``,
  L203-208), the whole engine configuration and the extra keys of L378-390.

Not mirrored: the report appended to ``FD_CONFIG_ROOT/usage_stats.json`` (L356-361) and the heartbeat
every 600 s (L343-354). The stand-in waits for its one attempt (at most ``WAIT`` seconds) before its
port opens, so that a test which sees the port open knows whether the attempt was made; FastDeploy's
model load takes far longer than the POST anyway.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import threading
import time
import urllib.request
import uuid
from typing import Any

# FD_USAGE_STATS_SERVER's default by release (2.5 envs.py L177-179; release/2.6 envs.py L205-207).
DEFAULT_SERVER = "http://fd-stats.baidu-int.com/fd/report/periodic"
DEFAULT_SERVER_2_6 = "http://10.169.17.184:8089/fd/report/periodic"
WAIT = 5.0


def is_usage_stats_enabled() -> bool:
    """``DO_NOT_TRACK`` must be exactly "1" to turn the report off (envs.py L175)."""
    return os.environ.get("DO_NOT_TRACK", "0") != "1"


def stats_server(release: str) -> str:
    newer = tuple(int(p) for p in release.split(".")[:2]) >= (2, 6)
    default = DEFAULT_SERVER_2_6 if newer else DEFAULT_SERVER
    return os.environ.get("FD_USAGE_STATS_SERVER", default)


def usage_message(config: dict[str, Any], release: str) -> dict[str, Any]:
    """The body of the first report: UsageMessage's fields (usage_lib.py L254-278) and extra keys."""
    return {
        "uuid": str(uuid.uuid4()),
        "provider": "RUNPOD" if os.environ.get("RUNPOD_DC_ID") else "Unknown",
        "cpu_num": os.cpu_count(),
        "architecture": platform.machine(),
        "platform": platform.platform(),
        "gpu_num": 1,
        "gpu_type": "stand-in GPU",
        "fd_version": release,
        "log_time": time.time_ns(),
        "source": os.environ.get("FD_USAGE_SOURCE", "Unknown"),
        "config": json.dumps(config, default=str),
        "quantization": config.get("quantization"),
        "tensor_parallel_size": config.get("tensor_parallel_size"),
    }


def _send(url: str, data: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(data).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with contextlib.suppress(OSError):  # silently ignored, as usage_lib.py L339-341 does
        urllib.request.urlopen(request, timeout=WAIT).close()


def report_usage_stats(config: dict[str, Any], release: str) -> threading.Thread | None:
    """Start the report unless DO_NOT_TRACK=1 (usage_lib.py L364-367); the thread, or None."""
    if not is_usage_stats_enabled():
        return None
    thread = threading.Thread(
        target=_send, args=(stats_server(release), usage_message(config, release)), daemon=True
    )
    thread.start()
    return thread
