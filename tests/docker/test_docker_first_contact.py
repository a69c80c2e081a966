"""First-contact traps that need the engine or a registry: deploy asks the image's registry (a real one:
Debian's docker-registry) whether the image exists before any write to RunPod, and says how to push it
when it does not; `test NAME` before `build NAME` says to build it first, not a registry lookup error."""

from __future__ import annotations

import hashlib
import json
import urllib.request
import uuid

import pytest

from builder.image.manifest_check import manifest_exists, split_reference
from tests.deploy.conftest import cli
from tests.deploy.fake_management import FakeManagementApi

pytestmark = pytest.mark.docker


def _put_blob(base: str, repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.Request(f"{base}/v2/{repository}/blobs/uploads/", method="POST")
    with urllib.request.urlopen(start, timeout=30) as reply:
        location = reply.headers["Location"]
    if location.startswith("/"):
        location = base + location
    sep = "&" if "?" in location else "?"
    put = urllib.request.Request(f"{location}{sep}digest={digest}", data=data, method="PUT")
    put.add_header("Content-Type", "application/octet-stream")
    urllib.request.urlopen(put, timeout=30).close()
    return digest


def push_manifest(address: str, repository: str, tag: str) -> None:
    """An image manifest (one empty config, no layer) through the Distribution API: no engine needed."""
    base = f"http://{address}"
    config = b"{}"
    digest = _put_blob(base, repository, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest,
            "size": len(config),
        },
        "layers": [],
    }
    put = urllib.request.Request(
        f"{base}/v2/{repository}/manifests/{tag}", data=json.dumps(manifest).encode(), method="PUT"
    )
    put.add_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
    urllib.request.urlopen(put, timeout=30).close()


def test_split_reference_reads_tags_digests_and_docker_hub_names():
    assert split_reference("docker.io/me/w:ernie") == ("registry-1.docker.io", "me/w", "ernie")
    assert split_reference("127.0.0.1:5000/a/b@sha256:" + "0" * 64) == (
        "127.0.0.1:5000",
        "a/b",
        "sha256:" + "0" * 64,
    )
    assert split_reference("python") == ("registry-1.docker.io", "library/python", "latest")


def test_deploy_checks_the_image_in_its_registry_before_any_write(registry, monkeypatch, tmp_path):
    for name in ("RUNPOD_API_KEY", "RUNPOD_API_BASE_URL", "REGISTRY_USERNAME", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no Docker config: anonymous, as the local registry wants
    repository = f"i15cli-{uuid.uuid4().hex[:8]}/fastdeploy-worker"
    there = f"{registry.address}/{repository}:ernie-0.3b-1"
    missing = f"{registry.address}/{repository}:never-pushed"
    push_manifest(registry.address, repository, "ernie-0.3b-1")
    assert manifest_exists(there) and not manifest_exists(missing)

    fake = FakeManagementApi("rpa_" + uuid.uuid4().hex).start()
    try:
        monkeypatch.setenv("RUNPOD_API_BASE_URL", fake.url)
        monkeypatch.setenv("RUNPOD_API_KEY", fake.api_key)
        refused = cli("deploy", "ernie-0.3b", "--image", missing)
        assert refused.code == 1, refused.text
        assert (
            f"{missing} is not in its registry" in refused.err
            and "python build.py push ernie-0.3b" in refused.err
        )
        assert refused.err.count("\n") == 1 and "Traceback" not in refused.text
        assert fake.log == []
        dry = cli("deploy", "ernie-0.3b", "--image", missing, "--dry-run")
        assert dry.code == 0, dry.text  # a dry run asks nobody
        skipped = cli("deploy", "ernie-0.3b", "--image", missing, "--no-image-check", "--name", "skipped")
        assert skipped.code == 0, skipped.text
        deployed = cli("deploy", "ernie-0.3b", "--image", there)
        assert deployed.code == 0, deployed.text
        assert any(e["image"] == there for e in fake.endpoints.values())
        assert fake.invalid == []
    finally:
        fake.stop()


def test_test_before_build_says_build_it_first(docker_client):
    registry = f"127.0.0.1:9/i15cli-never-built-{uuid.uuid4().hex[:8]}"
    ran = cli("test", "ernie-0.3b", "--registry", registry)
    assert ran.code == 2, ran.text
    assert f"build it first: python build.py build ernie-0.3b --registry {registry}" in ran.err
    assert ran.err.count("\n") == 1 and ran.out == ""
    for noise in ("Unable to find image", "no such host", "Traceback", "docker run"):
        assert noise not in ran.text
