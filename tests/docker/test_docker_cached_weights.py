"""A cached-weights variant (qwen3-8b-cached) end to end on the stand-in FastDeploy base: the image holds
no weights, and a container serves from a Hugging Face cache tree mounted where RunPod mounts its model
cache (runpod/docs serverless/endpoints/model-caching.mdx), under the lowercased folder name RunPod's
store may use; without the cache and with MODEL_CACHE_FALLBACK=false it stops with its message."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import dockerlab
import pytest
import requests

pytestmark = pytest.mark.docker

VARIANT = "qwen3-8b-cached"
MODEL = "Qwen/Qwen3-8B"
COMMIT = "b968826d9c46dd6066d109eabc6255188de91218"
CACHE_ROOT = "/runpod-volume/huggingface-cache/hub"
BRANCH = "i17cached"  # names what this module leaves in the shared Docker engine


@pytest.fixture(scope="module")
def cached_image(docker_client, standin_base, wheelhouse, registry, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("render-cached")
    tag = f"{BRANCH}-{uuid.uuid4().hex[:8]}"
    args = [
        "--variant", VARIANT,
        "--base-image", standin_base,
        "--wheelhouse", str(wheelhouse),
        "--out", str(out_dir),
        "--registry", f"{registry.address}/{BRANCH}",
        "--tag", tag,
    ]  # fmt: skip
    result = dockerlab.run_build(args)
    tags = dockerlab.tags_from_output(result.stdout)
    try:
        assert result.returncode == 0 and tags, result.stdout[-6000:]
        yield docker_client.images.get(tags[0])
    finally:
        for name in tags:
            try:
                docker_client.images.remove(name, force=True)
            except Exception as exc:
                print(f"cleanup: could not remove {name}: {exc}")


@pytest.fixture
def hub_cache(tmp_path, fake_weights) -> Path:
    """The fake weights as a Hugging Face cache: blobs, a snapshot of links into them, refs/main; the
    folder name lowercased as RunPod's store may write it."""
    repo = tmp_path / "hub" / f"models--{MODEL.replace('/', '--')}".lower()
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    files = {p.name: p.read_bytes() for p in sorted(fake_weights.iterdir())}
    files.update({"tokenizer.json": b"{}", "vocab.json": b"{}", "merges.txt": b"#version: 0.2\n"})
    for i, (name, body) in enumerate(files.items()):
        (repo / "blobs" / f"blob{i}").write_bytes(body)
        (snapshot / name).symlink_to(Path("..", "..", "blobs", f"blob{i}"))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    tmp_path.chmod(0o755)
    yield repo.parent
    shutil.rmtree(tmp_path / "hub", ignore_errors=True)


def test_image_has_no_weights_layer(docker_client, cached_image, tmp_path):
    config, layers, _files = dockerlab.save_image(docker_client, cached_image.id, tmp_path)
    assert dockerlab.layers_containing(layers, ".safetensors") == []
    assert not any(n.startswith("models") for layer in layers for n in layer.names)
    env = dict(e.split("=", 1) for e in json.loads(config)["config"]["Env"])
    assert env["MODEL"] == MODEL and env["MODEL_REVISION"] == COMMIT and env["MODEL_CACHED"] == "true"


def test_serves_from_the_cache_mounted_at_the_cache_root(docker_client, cached_image, hub_cache):
    container, port = dockerlab.start_worker(
        docker_client,
        cached_image.id,
        volumes={str(hub_cache): {"bind": CACHE_ROOT, "mode": "ro"}},
        name=f"{BRANCH}-cache-{uuid.uuid4().hex[:6]}",
    )
    try:
        dockerlab.wait_ready(container, port)
        logs = container.logs().decode(errors="replace")
        snapshot = f"{CACHE_ROOT}/models--qwen--qwen3-8b/snapshots/{COMMIT}"
        assert f"--model {snapshot} " in logs, logs[-3000:]
        assert "--revision" not in logs.split("Starting FastDeploy", 1)[1].splitlines()[0]
        assert "weights: cached route, on disk after" in logs and "warning:" not in logs
        base = f"http://127.0.0.1:{port}/openai/v1"
        models = requests.get(f"{base}/models", timeout=60).json()
        assert [m["id"] for m in models["data"]] == [MODEL]  # the served name stays the repository id
        reply = requests.post(
            f"{base}/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"]
    finally:
        container.remove(force=True)


def test_no_cache_and_no_fallback_stops_with_its_message(docker_client, cached_image):
    container, _port = dockerlab.start_worker(
        docker_client,
        cached_image.id,
        environment={"MODEL_CACHE_FALLBACK": "false"},
        name=f"{BRANCH}-nocache-{uuid.uuid4().hex[:6]}",
    )
    try:
        status = container.wait(timeout=120)["StatusCode"]
        logs = container.logs().decode(errors="replace")
        assert status == 1, logs[-3000:]
        assert f"no folder models--Qwen--Qwen3-8B (in any letter case) in {CACHE_ROOT}" in logs
        assert "MODEL_CACHE_FALLBACK=false forbids downloading it" in logs and "Traceback" not in logs
    finally:
        container.remove(force=True)
