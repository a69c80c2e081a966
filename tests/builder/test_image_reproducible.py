"""The pure parts of reproducible images, without an engine: the stages' tree normalization, the build
context archive with fixed metadata, and the data-layer labels."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from builder.compat import load_compat
from builder.image import buildkit, context_tar, layer_inputs
from builder.output.render import placeholder
from builder.paths import VARIANTS_DIR
from builder.variant.pipeline import prepare

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _normalize_tree():
    spec = importlib.util.spec_from_file_location("normalize_tree", TEMPLATES / "normalize_tree.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _messy_tree(root: Path, when: float, file_mode: int, dir_mode: int) -> Path:
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"cache")
    (root / ".cache" / "huggingface").mkdir(parents=True)
    (root / ".cache" / "huggingface" / "x.lock").write_text("")
    (root / "pkg" / "m.py").write_text("print(1)\n")
    (root / "pkg" / "run.sh").write_text("#!/bin/sh\n")
    (root / "pkg" / "run.sh").chmod(0o700)
    (root / "pkg" / "data.bin").write_bytes(b"x" * 1000)
    (root / "pkg" / "data.bin").chmod(file_mode)
    (root / "pkg" / "m.py").chmod(file_mode)
    (root / "link").symlink_to("pkg/m.py")
    for path in [root, *root.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(dir_mode)
        os.utime(path, (when, when), follow_symlinks=False)
    return root


def test_normalize_tree_fixes_times_modes_and_drops_leftovers(tmp_path):
    nt = _normalize_tree()
    root = _messy_tree(tmp_path / "layer", 1_700_000_000, 0o600, 0o700)
    changed, removed = nt.normalize(root)
    assert changed > 0 and removed == 2
    assert not (root / "pkg" / "__pycache__").exists() and not (root / ".cache").exists()
    for path in [root, *root.rglob("*")]:
        st = os.lstat(path)
        assert st.st_mtime == nt.DEFAULT_EPOCH, path
        if path.is_symlink():
            continue
        expected = 0o755 if path.is_dir() or path.name == "run.sh" else 0o644
        assert st.st_mode & 0o7777 == expected, path
    # A normalized tree is left alone: nothing to copy up on overlay storage.
    assert nt.normalize(root) == (0, 0)


def _tar_members(data: bytes) -> list[tuple[str, int, int, int, int, bytes | None]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [
            (m.name, m.mode, m.mtime, m.uid, m.gid, tar.extractfile(m).read() if m.isfile() else None)
            for m in tar
        ]


def test_context_archive_is_the_same_whatever_the_host_metadata(tmp_path):
    a = _messy_tree(tmp_path / "a", 1_600_000_000, 0o600, 0o700)
    b = _messy_tree(tmp_path / "b", 1_700_000_000, 0o664, 0o775)
    for ctx in (a, b):
        (ctx / "Dockerfile").write_text("FROM scratch\n")
        (ctx / ".dockerignore").write_text("# comment\n**/__pycache__\n.cache\n")
    data_a = b"".join(context_tar.stream(a))
    data_b = b"".join(context_tar.stream(b))
    assert data_a == data_b
    members = _tar_members(data_a)
    names = [m[0] for m in members]
    assert "Dockerfile" in names and "pkg/m.py" in names and "link" in names
    assert not any("__pycache__" in n or n.startswith(".cache") for n in names)
    assert {m[2] for m in members} == {context_tar.EPOCH} and {m[3] for m in members} == {0}
    modes = {m[0]: m[1] for m in members}
    assert modes["pkg/m.py"] == 0o644 and modes["pkg/run.sh"] == 0o755 and modes["pkg"] == 0o755
    assert dict((m[0], m[5]) for m in members)["pkg/data.bin"] == b"x" * 1000


@pytest.fixture
def staged(tmp_path):
    """A rendered-like build directory of ernie-0.3b: weights, wheels, lock files, code."""
    resolved = prepare(VARIANTS_DIR / "ernie-0.3b.yaml", load_compat()).resolved

    def make(name: str, weights: bytes = b"w" * 100, when: float = 1_600_000_000) -> Path:
        out = tmp_path / name
        (out / "weights").mkdir(parents=True)
        (out / "weights" / "README.md").write_text(placeholder("weights"))
        (out / "weights" / "model.safetensors").write_bytes(weights)
        (out / "wheels").mkdir()
        (out / "wheels" / "runpod-1.12.0-py3-none-any.whl").write_bytes(b"z")
        (out / "requirements.txt").write_text("runpod==1.12.0\n")
        (out / "constraints.txt").write_text("runpod==1.12.0\n")
        (out / "handler.py").write_text("print('handler')\n")
        (out / "worker_runtime").mkdir()
        (out / "worker_runtime" / "__init__.py").write_text("")
        for path in out.rglob("*"):
            os.utime(path, (when, when))
        return out

    return resolved, make


def test_layer_labels_depend_on_content_only(staged):
    resolved, make = staged
    a = layer_inputs.layer_labels(make("a"), resolved, "base:1")
    b = layer_inputs.layer_labels(make("b", when=1_700_000_000), resolved, "base:1")
    assert a == b
    weights = json.loads(a[layer_inputs.WEIGHTS])
    assert weights["model"] == resolved.model_id and weights["files"].startswith("sha256:")
    assert a[layer_inputs.BASE_NAME] == "base:1"
    c = layer_inputs.layer_labels(make("c", weights=b"v" * 100), resolved, "base:1")
    assert [k for k in a if a[k] != c[k]] == [layer_inputs.WEIGHTS]


def test_layer_labels_of_an_in_build_download(staged):
    resolved, make = staged
    out = make("d")
    shutil.rmtree(out / "weights")
    (out / "weights").mkdir()
    (out / "weights" / "README.md").write_text(placeholder("weights"))
    weights = json.loads(layer_inputs.layer_labels(out, resolved, None)[layer_inputs.WEIGHTS])
    assert "files" not in weights and weights["allow_patterns"] == list(resolved.allow_patterns)


def test_buildkit_command_line(tmp_path):
    argv = buildkit.buildkit_argv(
        ["docker", "buildx", "build", "--load"],
        tags=["r/x:1", "r/x:2"],
        labels={"a": "b c"},
        build_args={"BASE_IMAGE": "base:1"},
        cache_from=["r/x:prev"],
        iidfile=tmp_path / "iid",
    )
    assert argv[:4] == ["docker", "buildx", "build", "--load"] and argv[-1] == "-"  # context on stdin
    text = " ".join(argv)
    assert "--tag r/x:1 --tag r/x:2" in text and "--label a=b c" in text
    assert "--build-arg BASE_IMAGE=base:1 --build-arg BUILDKIT_INLINE_CACHE=1" in text
    assert "--cache-from r/x:prev" in text


def test_buildkit_failure_message_and_from_phase():
    lines = ["#5 [2/3] RUN false\n", "#5 ERROR: exit 1\n", "------\n", "error: failed to solve: x\n"]
    assert buildkit.failure_message(lines) == "failed to solve: x"
    assert buildkit.failure_message([]) == "the docker command failed without output"
    assert buildkit.from_failure("failed to solve with frontend: failed to create LLB definition: x")
    assert not buildkit.from_failure("failed to solve: process did not complete")


def _template_module(name: str):
    spec = importlib.util.spec_from_file_location(name, TEMPLATES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_in_build_download_path_leaves_a_normalized_tree(tmp_path, monkeypatch):
    """The weights stage's download branch: files under ROOT + dest, the client's .cache/ dropped, times
    and modes fixed (the client here is a stand-in writing what huggingface_hub leaves in local_dir)."""
    fetch, nt = _template_module("fetch_weights"), _normalize_tree()

    def fake_download(spec, dest):
        (dest / ".cache" / "huggingface" / "download").mkdir(parents=True)
        (dest / ".cache" / "huggingface" / "download" / "model.safetensors.lock").write_text("")
        (dest / "model.safetensors").write_bytes(b"t" * 64)
        (dest / "config.json").write_text("{}")
        (dest / "config.json").chmod(0o600)

    monkeypatch.setattr(fetch, "download", fake_download)
    spec = tmp_path / "weights.json"
    spec.write_text(
        json.dumps({"repo": "org/model", "revision": "abc", "source": "huggingface", "dest": "/models/m"})
    )
    root = tmp_path / "layer"
    assert fetch.main(str(spec), str(root)) == 0
    nt.normalize(root)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert names == ["models", "models/m", "models/m/config.json", "models/m/model.safetensors"]
    assert {os.lstat(p).st_mtime for p in root.rglob("*")} == {nt.DEFAULT_EPOCH}
    assert (root / "models" / "m" / "config.json").stat().st_mode & 0o777 == 0o644
