"""builder.image.docker without a Docker engine: event parsing, error paragraphs, tag handling."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from builder.image import docker as images
from builder.image.docker import (
    BuildProgress,
    ImageError,
    PushProgress,
    base_image_of,
    build_error_paragraph,
    event_error,
    push_error_paragraph,
    registry_of,
    split_tag,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("repo:tag", ("repo", "tag")),
        ("repo", ("repo", "latest")),
        ("127.0.0.1:5000/ns/name:ernie-0.3b", ("127.0.0.1:5000/ns/name", "ernie-0.3b")),
        ("127.0.0.1:5000/ns/name", ("127.0.0.1:5000/ns/name", "latest")),
        ("ghcr.io/org/worker:ernie-0.3b-0.1.0", ("ghcr.io/org/worker", "ernie-0.3b-0.1.0")),
    ],
)
def test_split_tag(ref, expected):
    assert split_tag(ref) == expected


def test_split_tag_rejects_digest():
    with pytest.raises(ImageError, match="digest"):
        split_tag("repo@" + DIGEST)


@pytest.mark.parametrize(
    ("repository", "registry"),
    [
        ("library/ubuntu", "docker.io"),
        ("ubuntu", "docker.io"),
        ("ghcr.io/org/x", "ghcr.io"),
        ("127.0.0.1:5000/x", "127.0.0.1:5000"),
        ("localhost/x", "localhost"),
    ],
)
def test_registry_of(repository, registry):
    assert registry_of(repository) == registry


def test_base_image_from_build_args_then_dockerfile(tmp_path: Path):
    (tmp_path / "Dockerfile").write_text(
        "ARG BASE_IMAGE=vendor/fastdeploy:2.5.0\nFROM ${BASE_IMAGE} AS base\n"
    )
    assert base_image_of(tmp_path, {"BASE_IMAGE": "mirror/fd:1"}) == "mirror/fd:1"
    assert base_image_of(tmp_path, {}) == "vendor/fastdeploy:2.5.0"
    (tmp_path / "Dockerfile").write_text("FROM debian:12\n")
    assert base_image_of(tmp_path, {}) == "debian:12"
    assert base_image_of(tmp_path / "missing", {}) is None


def test_event_error():
    assert event_error({"errorDetail": {"message": "boom"}, "error": "boom"}) == "boom"
    assert event_error({"error": "bad "}) == "bad"
    assert event_error({"stream": "Step 1/2"}) is None


def test_build_progress_tracks_steps_and_image_id():
    progress = BuildProgress()
    assert progress.feed({"stream": "Step 1/3 : ARG BASE_IMAGE=x\n"}) == "Step 1/3 : ARG BASE_IMAGE=x\n"
    progress.feed({"stream": "Step 2/3 : FROM ${BASE_IMAGE} AS base\n"})
    assert progress.in_from_step()
    # Pull progress of the base: one line per layer state, repeated states hidden.
    assert (
        progress.feed({"status": "Downloading", "id": "abc", "progress": "[=>  ]"}) == "  abc: Downloading\n"
    )
    assert progress.feed({"status": "Downloading", "id": "abc", "progress": "[==> ]"}) == ""
    assert progress.feed({"status": "Pull complete", "id": "abc"}) == "  abc: Pull complete\n"
    progress.feed({"stream": "Step 3/3 : RUN true\n"})
    assert not progress.in_from_step()
    assert progress.current_step == "RUN true"
    assert progress.feed({"aux": {"ID": DIGEST}}) == ""
    assert progress.image_id == DIGEST


def test_build_progress_falls_back_to_successfully_built():
    progress = BuildProgress()
    progress.feed({"stream": "Successfully built 0123456789ab\n"})
    assert progress.image_id == "0123456789ab"


@pytest.mark.parametrize(
    "message",
    [
        "pull access denied for vendor/fd, repository does not exist or may require 'docker login'",
        'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host',
        "manifest for vendor/fd:9 not found: manifest unknown: manifest unknown",
    ],
)
def test_base_pull_failure_names_image_and_suggests_base_image(message):
    text = build_error_paragraph(
        message, step="FROM ${BASE_IMAGE} AS base", in_from_step=True, base_image="vendor/fd:9"
    )
    assert "vendor/fd:9" in text
    assert "--base-image" in text
    assert message in text
    assert "\n" not in text


def test_other_build_failure_names_step():
    text = build_error_paragraph(
        "The command '/bin/sh -c false' returned a non-zero code: 1",
        step="RUN false",
        in_from_step=False,
        base_image="vendor/fd:9",
    )
    assert "RUN false" in text
    assert "--base-image" not in text


def test_push_progress_is_compact_and_finds_digest():
    progress = PushProgress()
    events = [
        {"status": "The push refers to repository [127.0.0.1:5000/x]"},
        {"status": "Preparing", "id": "aaa"},
        {"status": "Preparing", "id": "bbb"},
        {"status": "Waiting", "id": "aaa"},
        {"status": "Pushing", "id": "aaa", "progress": "[=> ] 1MB/8MB"},
        {"status": "Pushing", "id": "aaa", "progress": "[==> ] 2MB/8MB"},
        {"status": "Pushed", "id": "aaa"},
        {"status": "Layer already exists", "id": "bbb"},
        {"status": f"ernie-0.3b: digest: {DIGEST} size: 1234"},
        {"progressDetail": {}, "aux": {"Tag": "ernie-0.3b", "Digest": DIGEST, "Size": 1234}},
    ]
    text = "".join(progress.feed(e) for e in events)
    assert text.count("aaa: Pushing") == 1
    assert "Preparing" not in text and "Waiting" not in text
    assert progress.digest == DIGEST
    assert progress.layers == {"aaa": "Pushed", "bbb": "Layer already exists"}


def test_push_digest_from_status_line_when_no_aux():
    progress = PushProgress()
    progress.feed({"status": f"t: digest: {DIGEST} size: 1"})
    assert progress.digest == DIGEST


def test_refused_push_paragraph():
    text = push_error_paragraph("denied: requested access to the resource is denied", tag="ghcr.io/o/w:t")
    assert "ghcr.io" in text and "docker login ghcr.io" in text and "REGISTRY_USERNAME" in text
    other = push_error_paragraph("connection refused", tag="127.0.0.1:1/w:t")
    assert "reachable" in other


def test_no_engine_is_one_paragraph(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", "unix://" + str(tmp_path / "nothing.sock"))
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(ImageError) as info:
        images.build_image(tmp_path, tags=["x:y"], labels={}, build_args={}, out=io.StringIO())
    message = str(info.value)
    assert "No Docker engine is reachable" in message
    assert "nothing.sock" in message
    assert "\n" not in message
    with pytest.raises(ImageError, match="No Docker engine is reachable"):
        images.push_image(["x:y"], out=io.StringIO())


def test_registry_credentials_from_environment(monkeypatch):
    monkeypatch.delenv("REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("REGISTRY_PASSWORD", raising=False)
    assert images._registry_auth() is None
    monkeypatch.setenv("REGISTRY_USERNAME", "ci")
    monkeypatch.setenv("REGISTRY_PASSWORD", "pw")
    assert images._registry_auth() == {"username": "ci", "password": "pw"}
