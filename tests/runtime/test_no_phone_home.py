"""Nothing leaves the container unasked: FastDeploy's usage report (2.5 and release/2.6: sent by the first
GPU worker unless DO_NOT_TRACK=1) is off
unless FASTDEPLOY_USAGE_STATS allows it. The stand-in sends it as FastDeploy does; a recording server
stands in for ``FD_USAGE_STATS_SERVER``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from tests.served import ServedHttp

from .conftest import http, wait_until
from .test_standin_behaviours import StandIn

pytestmark = pytest.mark.integration


class Recorder(ServedHttp):
    """An HTTP server on 127.0.0.1 that records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.requests.append(("POST", self.path, json.loads(raw or b"null")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler)
        self.start()

    @property
    def report_url(self) -> str:
        return f"{self.url}/fd/report/periodic"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.stop()


@pytest.mark.parametrize("release", ["2.5.0", "2.6.0"])
def test_the_standin_reports_usage_like_fastdeploy_unless_do_not_track(recorder, release: str) -> None:
    """The control: without DO_NOT_TRACK=1 the stand-in's report reaches the server before its port
    opens; with it, nothing does."""
    report = recorder.report_url
    tracked = StandIn(DO_NOT_TRACK="0", FD_USAGE_STATS_SERVER=report, FD_STANDIN_RELEASE=release)
    try:
        assert len(recorder.requests) == 1, recorder.requests
        method, path, body = recorder.requests[0]
        assert (method, path) == ("POST", "/fd/report/periodic")
        assert body["fd_version"] == release and "platform" in body and "config" in body
    finally:
        tracked.stop()
    untracked = StandIn(DO_NOT_TRACK="1", FD_USAGE_STATS_SERVER=report, FD_STANDIN_RELEASE=release)
    untracked.stop()
    assert len(recorder.requests) == 1


def test_the_worker_sends_no_usage_report_by_default(local_runtime, recorder) -> None:
    rt = local_runtime(FD_USAGE_STATS_SERVER=recorder.report_url, DO_NOT_TRACK="0")
    status, _ = http("POST", rt.base + "/runsync", {"input": {"prompt": "hi"}})
    assert status == 200
    assert recorder.requests == []  # the engine's one attempt is over before its port opens


def test_the_usage_report_goes_out_when_the_setting_allows_it(
    local_runtime, recorder, engine_release
) -> None:
    local_runtime(FD_USAGE_STATS_SERVER=recorder.report_url, FASTDEPLOY_USAGE_STATS="true")
    wait_until(lambda: len(recorder.requests) == 1, "the usage report")
    assert recorder.requests[0][2]["fd_version"] == engine_release
