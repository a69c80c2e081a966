"""builder.image.naming: the tags and labels of an image."""

from __future__ import annotations

from builder import __version__
from builder.image.naming import image_labels, image_tags
from builder.variant.pipeline import prepare
from tests.builder.helpers import ROOT


def test_tags_and_registry():
    r = prepare(ROOT / "variants" / "ernie-0.3b.yaml").resolved
    assert image_tags(r) == [
        f"docker.io/example/fastdeploy-worker:ernie-0.3b-{__version__}",
        "docker.io/example/fastdeploy-worker:ernie-0.3b",
    ]
    tags = image_tags(r, "localhost:5000/team", ["nightly"])
    assert tags[-1] == "localhost:5000/team/fastdeploy-worker:nightly"
    assert all(t.startswith("localhost:5000/team/fastdeploy-worker:") for t in tags)


def test_labels_hold_the_resolved_variant_and_no_secret(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    r = prepare(ROOT / "variants" / "ernie-0.3b.yaml").resolved
    labels = image_labels(r, created="2026-01-01T00:00:00Z", revision="abc")
    assert labels["org.opencontainers.image.revision"] == "abc"
    assert labels["org.opencontainers.image.created"] == "2026-01-01T00:00:00Z"
    assert '"name":"ernie-0.3b"' in labels["io.runpod.fastdeploy.variant"]
    assert "hf_secret_value" not in repr(labels)
