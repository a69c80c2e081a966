"""Reproducible images: the same inputs give the same layer digests from a fresh builder state, a code-only
change alters one layer, a settings-only change none, and a push of an identical rebuild uploads no layer.

Each "fresh state" is a new copy of the stand-in base (a new image id, so no classic build cache applies),
an emptied BuildKit cache, weights copied again with other file times and modes, a render into a new
folder under another umask. Every build goes through the real CLI; the registry logs its requests, and a
completed blob upload is a ``PUT .../blobs/uploads/...?digest=`` line of that log.
"""

from __future__ import annotations

import io
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dockerlab
import pytest

pytestmark = pytest.mark.docker

VARIANT = "ernie-0.3b"
REPOSITORY = "repro"
# The one label a rebuild of the same inputs changes (the toolkit's commit changes with the checkout).
BUILD_TIME_LABELS = {"org.opencontainers.image.created"}


@dataclass
class Built:
    tag: str
    base: str
    out_dir: Path
    output: str = ""


@pytest.fixture(scope="module")
def logged_registry():
    """A registry of this module's own: blobs other tests pushed to the session's registry would be
    mounted from their repository instead of uploaded, and the upload counts below would shrink."""
    running = dockerlab.start_registry()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def nonces(docker_client):
    """Nonces of the fresh bases this module makes; every image built on them is removed at the end."""
    made: list[str] = []
    yield made
    for nonce in made:
        dockerlab.remove_nonce_images(docker_client, nonce)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    """One copy of the working tree for every build here, so that edits made meanwhile cannot count."""
    return dockerlab.copy_repo(tmp_path_factory.mktemp("snapshot") / "repo")


def edited_copy(snapshot: Path, target: Path, rel: str, old: str, new: str) -> Path:
    shutil.copytree(snapshot, target)
    path = target / rel
    text = path.read_text(encoding="utf-8")
    assert old in text, (rel, old)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def build(docker_client, standin_base, wheelhouse, logged_registry, nonces, snapshot, tmp_path_factory):
    """``build(name, weights, base=None, repo=None, umask=None) -> Built`` through ``python build.py``;
    without ``base`` the build starts from a fresh state (new base copy, empty BuildKit cache)."""

    def run(
        name: str,
        weights: Path,
        *,
        base: str | None = None,
        repo: Path | None = None,
        umask: int | None = None,
        extra: tuple[str, ...] = (),
    ) -> Built:
        if base is None:
            nonce = uuid.uuid4().hex[:10]
            nonces.append(nonce)
            dockerlab.prune_build_cache(docker_client)
            base = dockerlab.fresh_base(docker_client, standin_base, nonce)
        out_dir = tmp_path_factory.mktemp(f"repro-{name}")
        args = [
            "--variant", VARIANT, "--base-image", base, "--weights-from", str(weights),
            "--wheelhouse", str(wheelhouse), "--out", str(out_dir),
            "--registry", f"{logged_registry.address}/{REPOSITORY}", "--tag", f"{name}-{nonces[-1]}",
            *extra,
        ]  # fmt: skip
        old = os.umask(umask) if umask is not None else None
        try:
            result = dockerlab.run_build(args, repo=repo or snapshot)
        finally:
            if old is not None:
                os.umask(old)
        assert result.returncode == 0, result.stdout[-6000:]
        tag = next(t for t in dockerlab.tags_from_output(result.stdout) if t.endswith(f"{name}-{nonces[-1]}"))
        return Built(tag=tag, base=base, out_dir=out_dir, output=result.stdout)

    return run


@pytest.fixture(scope="module")
def first(build, fake_weights) -> Built:
    return build("first", fake_weights)


@pytest.fixture(scope="module")
def second(build, fake_weights, first, tmp_path_factory) -> Built:
    """The same inputs from another machine's state: other file times, modes and umask, no cache."""
    weights = dockerlab.copy_with_new_times(
        fake_weights, tmp_path_factory.mktemp("weights-again") / VARIANT, time.time() - 7 * 86400, mode=0o600
    )
    return build("second", weights, umask=0o077)


@pytest.fixture(scope="module")
def data_layers(docker_client, first, tmp_path_factory) -> dict[str, int]:
    """Index (among the layers above the base) of the weights, dependency and code layers of ``first``."""
    below = len(docker_client.images.get(first.base).attrs["RootFS"]["Layers"])
    _config, layers, _files = dockerlab.save_image(docker_client, first.tag, tmp_path_factory.mktemp("save"))
    found = {
        "weights": dockerlab.layers_containing(layers, f"models/{VARIANT}/model.safetensors"),
        "deps": dockerlab.layers_containing(layers, "opt/worker/deps/runpod/__init__.py"),
        "code": dockerlab.layers_containing(layers, "opt/worker/worker_runtime/__init__.py"),
    }
    assert all(len(v) == 1 for v in found.values()), found
    return {name: v[0] - below for name, v in found.items()}


def test_clean_rebuild_gives_identical_layer_digests(docker_client, first, second, data_layers):
    a = dockerlab.layer_ids(docker_client, first.tag, first.base)
    b = dockerlab.layer_ids(docker_client, second.tag, second.base)
    # Least often changed lowest: weights, then dependencies, then code, and nothing else above the base.
    assert [data_layers[k] for k in ("weights", "deps", "code")] == [0, 1, 2]
    assert len(a) == 3
    for name, index in data_layers.items():
        assert a[index] == b[index], f"the {name} layer differs between two clean builds"
    assert a == b


def test_rebuild_config_differs_only_in_build_time(docker_client, first, second):
    """`docker inspect` of two clean builds: the same config apart from build times and the created label."""
    a = docker_client.api.inspect_image(first.tag)
    b = docker_client.api.inspect_image(second.tag)
    assert a["Created"] != b["Created"]  # what the image id changes with (the classic builder's clock)
    labels_a, labels_b = dict(a["Config"]["Labels"]), dict(b["Config"]["Labels"])
    # Besides the build time: the toolkit's commit (another commit may land between the two builds) and,
    # only because this test names each fresh copy of the base differently, the base name and nonce.
    allowed = BUILD_TIME_LABELS | {
        "org.opencontainers.image.revision",
        "org.opencontainers.image.base.name",
        dockerlab.NONCE_LABEL,
    }
    assert {k for k in labels_a.keys() | labels_b.keys() if labels_a.get(k) != labels_b.get(k)} <= allowed
    for key in ("Env", "Entrypoint", "Cmd", "WorkingDir", "ExposedPorts", "Volumes", "User"):
        assert a["Config"].get(key) == b["Config"].get(key), key
    # The data-layer labels say what determined each layer, and are equal for equal layers.
    for key in ("io.runpod.fastdeploy.layer.weights", "io.runpod.fastdeploy.layer.deps"):
        assert labels_a[key] == labels_b[key]
    assert '"files":"sha256:' in labels_a["io.runpod.fastdeploy.layer.weights"]
    assert labels_a["io.runpod.fastdeploy.layer.code"].startswith('{"code":"sha256:')


def test_code_only_change_alters_exactly_the_code_layer(
    docker_client, build, fake_weights, first, data_layers, snapshot, tmp_path_factory
):
    rel = "worker_runtime/__init__.py"
    text = (snapshot / rel).read_text(encoding="utf-8")
    repo = edited_copy(
        snapshot, tmp_path_factory.mktemp("repo-code") / "repo", rel, text, text + "\n# a change\n"
    )
    changed = build("code", fake_weights, base=first.base, repo=repo)
    a = dockerlab.layer_ids(docker_client, first.tag, first.base)
    b = dockerlab.layer_ids(docker_client, changed.tag, first.base)
    assert len(a) == len(b)
    assert [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y] == [data_layers["code"]]
    labels_a = docker_client.images.get(first.tag).labels
    labels_b = docker_client.images.get(changed.tag).labels
    assert labels_a["io.runpod.fastdeploy.layer.code"] != labels_b["io.runpod.fastdeploy.layer.code"]


def test_settings_only_change_alters_no_layer(
    docker_client, build, fake_weights, first, snapshot, tmp_path_factory
):
    target = tmp_path_factory.mktemp("repo-settings") / "repo"
    rel = f"variants/{VARIANT}.yaml"
    repo = edited_copy(snapshot, target, rel, "max_num_seqs: 128", "max_num_seqs: 96")
    changed = build("settings", fake_weights, base=first.base, repo=repo)
    env = docker_client.images.get(changed.tag).attrs["Config"]["Env"]
    assert "MAX_NUM_SEQS=96" in env
    assert dockerlab.layer_ids(docker_client, changed.tag, first.base) == dockerlab.layer_ids(
        docker_client, first.tag, first.base
    )


def test_push_of_an_identical_rebuild_uploads_no_layer_blob(logged_registry, first, second):
    from builder.image.docker import push_image

    since = logged_registry.log_size()
    push_image([first.tag], out=io.StringIO())
    time.sleep(0.5)  # the access log line is written after the response
    first_uploads = dockerlab.blob_uploads(logged_registry, since)
    assert len(first_uploads) >= 4, first_uploads  # base layers, data layers, config

    since = logged_registry.log_size()
    push_image([second.tag], out=io.StringIO())
    time.sleep(0.5)
    repository, reference = second.tag.split("/", 1)[1].rsplit(":", 1)
    manifest = dockerlab.manifest_of(logged_registry, repository, reference)
    uploads = dockerlab.blob_uploads(logged_registry, since)
    layer_digests = {layer["digest"] for layer in manifest["layers"]}
    assert not [d for _repo, d in uploads if d in layer_digests], uploads
    assert {d for _repo, d in uploads} <= {manifest["config"]["digest"]}


def test_buildkit_gives_the_same_layers_as_the_classic_builder(
    docker_client, standin_base, first, nonces, data_layers
):
    """The rendered directory built by BuildKit (the Docker CLI, host file times) from a fresh state."""
    nonce = uuid.uuid4().hex[:10]
    nonces.append(nonce)
    dockerlab.prune_build_cache(docker_client)
    base = dockerlab.fresh_base(docker_client, standin_base, nonce)
    tag = f"fdrw-test/repro-buildkit:{nonce}"
    result = dockerlab.cli_build(dockerlab.buildkit_command(), base, tag, first.out_dir)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    a = dockerlab.layer_ids(docker_client, first.tag, first.base)
    b = dockerlab.layer_ids(docker_client, tag, base)
    # The same three data layers, in the same order; BuildKit also records a layer for each RUN of the base
    # stage and for WORKDIR, which hold no file (size 0).
    assert [layer for layer in b if layer in a] == a
    history = docker_client.api.history(tag)
    sizes = [entry["Size"] for entry in history[: len(history) - len(docker_client.api.history(base))]]
    assert len([size for size in sizes if size]) == len(a), sizes


def test_build_py_with_buildkit_gives_the_same_data_layers(docker_client, build, fake_weights, first):
    """`--builder buildkit` (the Docker CLI, fed the same normalized context) from a fresh state."""
    built = build("bkcli", fake_weights, extra=("--builder", "buildkit"))
    a = dockerlab.layer_ids(docker_client, first.tag, first.base)
    b = dockerlab.layer_ids(docker_client, built.tag, built.base)
    assert [layer for layer in b if layer in a] == a
    labels = docker_client.images.get(built.tag).labels
    assert (
        labels["io.runpod.fastdeploy.layer.weights"]
        == docker_client.images.get(first.tag).labels["io.runpod.fastdeploy.layer.weights"]
    )


def test_cache_from_pulls_an_earlier_image_and_skips_a_missing_one(
    docker_client, build, fake_weights, first, logged_registry
):
    from builder.image.docker import push_image

    push_image([first.tag], out=io.StringIO())
    docker_client.images.remove(first.tag)  # only the registry has it now
    missing = f"{logged_registry.address}/{REPOSITORY}/never-pushed:none"
    built = build(
        "cached", fake_weights, base=first.base, extra=("--cache-from", first.tag, "--cache-from", missing)
    )
    assert f"Pulling {first.tag}" in built.output
    assert f"{missing} is not available" in built.output
    assert docker_client.images.get(first.tag)  # pulled back
    assert dockerlab.layer_ids(docker_client, built.tag, first.base) == dockerlab.layer_ids(
        docker_client, first.tag, first.base
    )
