"""The ernie-0.3b worker image, unchanged, serving a RunPod load-balancing endpoint
(``-e ENDPOINT_TYPE=load_balancer``) on the stand-in FastDeploy base: health 204 while the engine
loads and 200 after, the official openai SDK streaming chat and completions at ``/v1``, the engine's
control routes and unknown paths answered 404 without reaching it, and SIGTERM mid-stream letting the
stream finish before the container stops by itself.

The image is built by the worker-image module's fixtures (one cold build per module).
"""

from __future__ import annotations

import json
import time
import uuid

import dockerlab
import pytest
import requests
import test_docker_worker_image as worker_image

# The worker-image module's build fixtures, for this module's own build of the same image.
built, canary, image = worker_image.built, worker_image.canary, worker_image.image
made_tags, run_builder = worker_image.made_tags, worker_image.run_builder
session_tag = worker_image.session_tag

pytestmark = pytest.mark.docker

LB_PORT = 80  # the default PORT: what RunPod's load balancer connects to unless told otherwise
LOAD_DELAY_S = 6.0  # the stand-in's model load: long enough to see the 204s
REQUEST_LOG = "/tmp/engine-requests.log"  # the stand-in's record of every request it received
MESSAGES = [{"role": "user", "content": "Say hi"}]


def start_lb_worker(docker_client, image_id: str, **env: str):
    """Run the image with ENDPOINT_TYPE=load_balancer, PORT published on 127.0.0.1; (container, port)."""
    port = dockerlab.free_port()
    container = docker_client.containers.run(
        image_id,
        name=f"i16runtime-lb-{uuid.uuid4().hex[:8]}",
        detach=True,
        ports={f"{LB_PORT}/tcp": ("127.0.0.1", port)},
        shm_size="1g",
        environment={"ENDPOINT_TYPE": "load_balancer", "FD_STANDIN_REQUEST_LOG": REQUEST_LOG, **env},
    )
    return container, port


def logs(container) -> str:
    return container.logs().decode(errors="replace")[-4000:]


def ping(port: int) -> int | None:
    return dockerlab.http_status(f"http://127.0.0.1:{port}/ping", timeout=2)


def engine_received(container) -> list[str]:
    code, out = container.exec_run(["cat", REQUEST_LOG])
    assert code == 0, out
    return out.decode().splitlines()


@pytest.fixture(scope="module")
def lb_worker(docker_client, image):
    container, port = start_lb_worker(
        docker_client, image.id, FD_STANDIN_LOAD_DELAY=str(LOAD_DELAY_S), FD_STANDIN_TOKEN_DELAY="0.02"
    )
    try:
        seen: list[int] = []
        deadline = time.monotonic() + 180
        while not seen or seen[-1] != 200:
            assert time.monotonic() < deadline, (seen, logs(container))
            container.reload()
            assert container.status not in ("exited", "dead"), logs(container)
            status = ping(port)
            if status is not None and (not seen or seen[-1] != status):
                seen.append(status)
            time.sleep(0.05)
        yield container, port, seen
    finally:
        container.remove(force=True)


def test_health_is_204_while_the_engine_loads_then_200(lb_worker):
    _container, _port, seen = lb_worker
    assert seen == [204, 200]


def test_openai_sdk_streams_chat_and_completions(lb_worker):
    from openai import OpenAI

    _container, port = lb_worker[:2]
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="lb", timeout=60, max_retries=0)
    model = client.models.list().data[0].id
    chat = list(client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=8, stream=True))
    assert len(chat) >= 8 and "".join(c.choices[0].delta.content or "" for c in chat if c.choices)
    text = list(client.completions.create(model=model, prompt="Once", max_tokens=8, stream=True))
    assert len(text) >= 8 and "".join(c.choices[0].text for c in text if c.choices)


def test_native_job_at_generate(lb_worker):
    _container, port = lb_worker[:2]
    job = {"input": {"prompt": "Once", "sampling_params": {"max_tokens": 5}}}
    response = requests.post(f"http://127.0.0.1:{port}/generate", json=job, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 5


def test_control_routes_and_unknown_paths_never_reach_the_engine(lb_worker):
    container, port = lb_worker[:2]
    before = len(engine_received(container))
    for method, path in [
        ("POST", "/v1/pause"),
        ("GET", "/metrics"),
        ("GET", "/config-info"),
        ("GET", "/health"),
        ("GET", "/no/such/path"),
    ]:
        response = requests.request(method, f"http://127.0.0.1:{port}{path}", json={}, timeout=30)
        assert response.status_code == 404, (path, response.text)
    assert requests.get(f"http://127.0.0.1:{port}/v1/models", timeout=30).status_code == 200
    assert engine_received(container)[before:] == ["GET /v1/models"]


def test_sigterm_mid_stream_lets_the_stream_finish_and_stops_the_container(docker_client, image):
    tokens = 60  # 1.2 s at 20 ms a token: within the default grace (5 s)
    container, port = start_lb_worker(
        docker_client, image.id, FD_STANDIN_TOKEN_DELAY="0.02", FD_STANDIN_ANSWER_TOKENS=str(tokens)
    )
    try:
        deadline = time.monotonic() + 180
        while ping(port) != 200:
            assert time.monotonic() < deadline, logs(container)
            time.sleep(0.05)
        body = {"prompt": "long", "max_tokens": tokens, "stream": True}
        url = f"http://127.0.0.1:{port}/v1/completions"
        with requests.post(url, json=body, stream=True, timeout=60) as r:
            lines = r.iter_lines()
            first = next(line for line in lines if line)
            container.kill(signal="SIGTERM")
            events = [first, *(line for line in lines if line)]
        assert events[-1] == b"data: [DONE]"
        chunks = [json.loads(e[len(b"data: ") :]) for e in events[:-1]]
        assert sum(1 for c in chunks if c["choices"]) == tokens  # every token arrived
        code = container.wait(timeout=60)["StatusCode"]
        output = logs(container)
        assert code == 0, output
        assert "Stopping: no new requests" in output and "Stopped (engine exit code" in output, output
    finally:
        container.remove(force=True)
