"""builder/images.py against a real Docker engine and a real registry (tiny contexts, stand-in base)."""

from __future__ import annotations

import io
import subprocess
import uuid
from pathlib import Path

import dockerlab
import pytest

from builder.image.docker import ImageError, build_image, push_image

pytestmark = pytest.mark.docker


def _context(tmp_path: Path, body: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "ARG BASE_IMAGE=example.invalid/fastdeploy:0\nFROM ${BASE_IMAGE}\n" + body
    )
    (ctx / "hello.txt").write_text("hello\n")
    return ctx


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


def test_build_applies_every_tag_and_label(docker_client, standin_base, tmp_path, unique):
    ctx = _context(tmp_path, "COPY hello.txt /hello.txt\nRUN cat /hello.txt\n")
    tags = [f"fdrw-test/tiny:{unique}-a", f"fdrw-test/tiny:{unique}-b", f"127.0.0.1:1/ns/tiny:{unique}"]
    out = io.StringIO()
    image_id = build_image(
        ctx,
        tags=tags,
        labels={"org.opencontainers.image.version": "9.9.9", "io.runpod.fastdeploy.variant": '{"name":"x"}'},
        build_args={"BASE_IMAGE": standin_base},
        out=out,
    )
    try:
        image = docker_client.images.get(image_id)
        assert set(tags) <= set(image.tags)
        assert image.labels["org.opencontainers.image.version"] == "9.9.9"
        assert image.labels["io.runpod.fastdeploy.variant"] == '{"name":"x"}'
        text = out.getvalue()
        assert "Step" in text and "hello" in text  # build progress is shown
        assert image_id in text
    finally:
        for tag in tags:
            docker_client.images.remove(tag, noprune=False)


def test_unpullable_base_names_it_and_suggests_base_image(docker_client, tmp_path):
    ctx = _context(tmp_path, "RUN true\n")
    base = "127.0.0.1:9/no/such-base:1"
    with pytest.raises(ImageError) as info:
        build_image(
            ctx, tags=["fdrw-test/never:1"], labels={}, build_args={"BASE_IMAGE": base}, out=io.StringIO()
        )
    message = str(info.value)
    assert base in message
    assert "--base-image" in message
    assert "\n" not in message


def test_failing_step_is_reported(docker_client, standin_base, tmp_path, unique):
    ctx = _context(tmp_path, "RUN echo about to fail && false\n")
    with pytest.raises(ImageError) as info:
        build_image(
            ctx,
            tags=[f"fdrw-test/fail:{unique}"],
            labels={},
            build_args={"BASE_IMAGE": standin_base},
            out=io.StringIO(),
        )
    assert "RUN echo about to fail && false" in str(info.value)


def test_push_prints_digests_and_pull_by_digest_works(
    docker_client, standin_base, registry, tmp_path, unique
):
    ctx = _context(tmp_path, f"RUN echo {unique} > /unique.txt\n")
    repository = f"{registry.address}/tests/tiny"
    tags = [f"{repository}:{unique}-1", f"{repository}:{unique}-2"]
    image_id = build_image(
        ctx, tags=tags, labels={}, build_args={"BASE_IMAGE": standin_base}, out=io.StringIO()
    )
    out = io.StringIO()
    digests = push_image(tags, out=out)
    assert set(digests) == set(tags)
    assert len(set(digests.values())) == 1  # same image, same manifest
    digest = digests[tags[0]]
    assert digest.startswith("sha256:") and len(digest) == 71
    text = out.getvalue()
    assert f"{tags[0]}@{digest}" in text
    assert text.count("Pushing") <= 40, "push progress must stay compact"
    # Second tag: every layer is already there.
    assert "Layer already exists" in text
    for tag in tags:
        docker_client.images.remove(tag)
    pulled = docker_client.images.pull(f"{repository}@{digest}")
    assert pulled.id == image_id
    docker_client.images.remove(f"{repository}@{digest}")


def test_refused_push_is_one_paragraph(docker_client, standin_base, tmp_path, unique):
    ctx = _context(tmp_path, "")
    # Nothing listens on port 9 of 127.0.0.1: the engine cannot reach the registry.
    tag = f"127.0.0.1:9/tests/tiny:{unique}"
    build_image(ctx, tags=[tag], labels={}, build_args={"BASE_IMAGE": standin_base}, out=io.StringIO())
    try:
        with pytest.raises(ImageError) as info:
            push_image([tag], out=io.StringIO())
        assert "127.0.0.1:9" in str(info.value)
        assert "\n" not in str(info.value)
    finally:
        docker_client.images.remove(tag)


def test_password_is_never_printed(docker_client, standin_base, registry, tmp_path, unique, monkeypatch):
    password = "canary-pw-" + unique
    monkeypatch.setenv("REGISTRY_USERNAME", "ci")
    monkeypatch.setenv("REGISTRY_PASSWORD", password)
    ctx = _context(tmp_path, "")
    tag = f"{registry.address}/tests/auth:{unique}"
    build_image(ctx, tags=[tag], labels={}, build_args={"BASE_IMAGE": standin_base}, out=io.StringIO())
    out = io.StringIO()
    push_image([tag], out=out)  # the test registry accepts anyone; credentials are still sent
    assert password not in out.getvalue()
    docker_client.images.remove(tag)


def test_debian_cli_builds_with_buildkit(standin_base, tmp_path, unique):
    """The BuildKit route the tests use for rendered images works on this engine."""

    ctx = _context(tmp_path, "COPY hello.txt /hello.txt\n")
    argv, env = dockerlab.buildkit_command()
    tag = f"fdrw-test/bk:{unique}"
    result = dockerlab.cli_build((argv, env), standin_base, tag, ctx, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    subprocess.run([argv[0], "rmi", tag], capture_output=True, timeout=60, check=True)
