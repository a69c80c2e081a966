"""Pure pieces: did-you-mean, extends merging, memory and disk rules, image naming, staging, the
images hand-off (builder.image.docker stubbed: the real one is tested with Docker in tests/docker)."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pytest
from conftest import ROOT

from builder import __version__, cli
from builder.compat import load_compat
from builder.errors import did_you_mean
from builder.image.context import StagingError, stage
from builder.image.naming import image_labels, image_tags
from builder.variant.loader import load_variant
from builder.variant.pipeline import prepare


def test_version_has_one_copy():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'version = { attr = "builder.__version__" }' in text
    assert '\nversion = "' not in text


def test_did_you_mean():
    assert did_you_mean("quantizaton", ["quantization", "cuda"]) == "quantization"
    assert did_you_mean("WINT4", ["wint4", "wint8"]) == "wint4"
    assert did_you_mean("zzz", ["wint4"]) is None
    assert did_you_mean(3, ["3"]) is None


def test_extends_chain_merges_mappings_and_replaces_lists(tmp_path):
    (tmp_path / "_a.yaml").write_text(
        "engine: {cuda: '12.6', quantization: wint8}\nhub: {gpu_ids: [AMPERE_80]}\n"
    )
    (tmp_path / "_b.yaml").write_text("extends: _a\nengine: {quantization: wint4}\n")
    (tmp_path / "c.yaml").write_text("extends: _b.yaml\nhub: {gpu_ids: [ADA_24, AMPERE_24]}\n")
    loaded = load_variant(tmp_path / "c.yaml")
    assert loaded.data["engine"] == {"cuda": "12.6", "quantization": "wint4"}
    assert loaded.data["hub"]["gpu_ids"] == ["ADA_24", "AMPERE_24"]
    assert loaded.file_for(("engine", "quantization")).endswith("_b.yaml")
    assert loaded.file_for(("engine", "cuda")).endswith("_a.yaml")
    assert loaded.file_for(("hub", "gpu_ids", 1)).endswith("c.yaml")
    assert loaded.file_for(("hub", "gpu_count")).endswith("c.yaml")
    assert [p.name for p in loaded.chain] == ["c.yaml", "_b.yaml", "_a.yaml"]


def test_memory_rule_matches_the_reference_table():
    compat = load_compat()
    util = compat.default_gpu_memory_utilization
    # ERNIE 21B: one 48 GB card at wint4; A10-class 24 GB cards need 2 at wint8, 1 at wint4.
    assert compat.required_memory_gb(42, "wint4") <= 48 * util
    assert compat.required_memory_gb(42, "wint8") > 24 * util
    assert compat.required_memory_gb(42, "wint8") <= 2 * 24 * util
    assert compat.required_memory_gb(42, "wint4") <= 24 * util
    # ERNIE 300B on 80 GB cards: wint4 x4, wint2 x2, wint8 x8; not wint4 x2.
    assert compat.required_memory_gb(600, "wint4") <= 4 * 80 * util
    assert compat.required_memory_gb(600, "wint4") > 2 * 80 * util
    assert compat.required_memory_gb(600, "wint2") <= 2 * 80 * util
    assert compat.required_memory_gb(600, "wint8") <= 8 * 80 * util
    assert compat.needed_disk_gb(0.7) == 31


def test_resolution_fills_defaults():
    r = prepare(ROOT / "variants" / "ernie-300b-a47b-wint4-tp4.yaml").resolved
    assert r.gpu_count == 4
    assert r.container_disk_gb == load_compat().needed_disk_gb(600)
    assert r.allowed_cuda_versions == ["12.6", "12.7", "12.8", "12.9", "13.0"]
    assert r.settings["MODEL"] == "baidu/ERNIE-4.5-300B-A47B-Paddle"
    assert r.settings["MODEL_SOURCE"] == "huggingface"
    assert r.settings["ENGINE_STARTUP_TIMEOUT"] == 3600
    assert r.model_dir is None and not r.bake


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


def test_staging_links_weights_and_wheels(tmp_path):
    r = prepare(ROOT / "variants" / "ernie-0.3b.yaml").resolved
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    (src / "model.safetensors").write_bytes(b"w" * 10)
    (src / "sub" / "config.json").write_text("{}")
    wheels = tmp_path / "wh"
    wheels.mkdir()
    (wheels / "runpod-1.12.0-py3-none-any.whl").write_bytes(b"z")
    (wheels / "notes.txt").write_text("x")
    out = tmp_path / "build"
    stage(out, r, weights_from=src, wheelhouse=wheels, log=lambda _m: None)
    assert (out / "weights" / "model.safetensors").read_bytes() == b"w" * 10
    assert (out / "weights" / "sub" / "config.json").exists()
    assert (out / "weights" / "model.safetensors").stat().st_ino == (src / "model.safetensors").stat().st_ino
    assert sorted(p.name for p in (out / "wheels").iterdir()) == [
        "README.md",
        "runpod-1.12.0-py3-none-any.whl",
    ]


def test_staging_gated_model_needs_token_on_host(tmp_path):
    import dataclasses

    r = dataclasses.replace(prepare(ROOT / "variants" / "ernie-0.3b.yaml").resolved, gated=True)
    with pytest.raises(StagingError, match="HF_TOKEN"):
        stage(tmp_path, r, environ={}, log=lambda _m: None)
    r2 = prepare(ROOT / "variants" / "ernie-300b-a47b-wint4-tp4.yaml").resolved
    with pytest.raises(StagingError, match="does not bake"):
        stage(tmp_path, r2, weights_from=tmp_path, log=lambda _m: None)


def _fake_images(monkeypatch, *, fail: bool = False):
    """builder.image.docker without an engine: build_image/push_image record their calls."""
    from builder.image import docker

    calls = {}

    def build_image(context_dir: Path, *, tags, labels, build_args, out, cache_from=()):
        calls["build"] = (context_dir, list(tags), dict(labels), dict(build_args))
        calls["cache_from"] = list(cache_from)
        if fail:
            raise docker.ImageError("the base image cannot be pulled: try --base-image")
        return "sha256:image"

    def push_image(tags, *, out):
        calls["push"] = list(tags)
        return {t: "sha256:" + "0" * 64 for t in tags}

    monkeypatch.setattr(docker, "build_image", build_image)
    monkeypatch.setattr(docker, "push_image", push_image)
    return calls


def test_build_calls_images_with_tags_labels_args(monkeypatch, tmp_path, capsys):
    calls = _fake_images(monkeypatch)
    wh = tmp_path / "wh"
    wh.mkdir()
    (wh / "runpod-1.12.0-py3-none-any.whl").write_bytes(b"z")
    rc = cli.main(
        [
            "--variant",
            "ernie-0.3b",
            "--out",
            str(tmp_path / "b"),
            "--push",
            "--registry",
            "localhost:5000",
            "--tag",
            "x1",
            "--base-image",
            "local/fd:test",
            "--wheelhouse",
            str(wh),
        ]
    )
    assert rc == 0
    context_dir, tags, labels, args = calls["build"]
    assert context_dir == tmp_path / "b"
    assert tags[0] == f"localhost:5000/fastdeploy-worker:ernie-0.3b-{__version__}"
    assert "localhost:5000/fastdeploy-worker:x1" in tags
    assert args == {"BASE_IMAGE": "local/fd:test"}
    assert "io.runpod.fastdeploy.variant" in labels
    # What determined each data layer (builder.image.layer_inputs), and the base the build used.
    assert labels["org.opencontainers.image.base.name"] == "local/fd:test"
    assert json.loads(labels["io.runpod.fastdeploy.layer.deps"])["wheels"].startswith("sha256:")
    assert json.loads(labels["io.runpod.fastdeploy.layer.weights"])["model"] == "baidu/ERNIE-4.5-0.3B-Paddle"
    assert json.loads(labels["io.runpod.fastdeploy.layer.code"])["code"].startswith("sha256:")
    assert calls["cache_from"] == []
    assert calls["push"] == tags
    assert (tmp_path / "b" / "wheels" / "runpod-1.12.0-py3-none-any.whl").exists()
    assert "sha256:" + "0" * 64 in capsys.readouterr().out


def test_image_error_exits_1_without_traceback(monkeypatch, tmp_path, capsys):
    _fake_images(monkeypatch, fail=True)
    rc = cli.main(["--variant", "ernie-0.3b", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 1 and "base image cannot be pulled" in err and "Traceback" not in err


def test_print_goes_to_stdout_as_yaml(capsys):
    assert cli.main(["--variant", "ernie-0.3b", "--print"]) == 0
    assert "model_id: baidu/ERNIE-4.5-0.3B-Paddle" in capsys.readouterr().out


# --- staging: reset per build, no byte comparison of shards, host download errors -------------------


def _weights(path: Path, names: dict[str, bytes]) -> Path:
    for name, body in names.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(body)
    return path


def _staged(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_staging_resets_weights_and_wheels_every_build(tmp_path):
    from builder.output.render import render_files, write_files

    r = prepare(ROOT / "variants" / "ernie-0.3b.yaml").resolved
    out = tmp_path / "build"
    write_files(out, render_files(r, load_compat()))
    first = _weights(tmp_path / "a", {"a.safetensors": b"a", "README.md": b"model card"})
    second = _weights(tmp_path / "b", {"b.safetensors": b"b"})
    wheels = _weights(tmp_path / "wh", {"runpod-1.0-py3-none-any.whl": b"z"})
    quiet = {"log": lambda _m: None, "environ": {}}
    stage(out, r, weights_from=first, wheelhouse=wheels, **quiet)
    assert _staged(out / "weights") == ["README.md", "a.safetensors"]
    # A second --weights-from replaces the first set instead of merging with it.
    stage(out, r, weights_from=second, **quiet)
    assert _staged(out / "weights") == ["README.md", "b.safetensors"]
    assert _staged(out / "wheels") == ["README.md"]
    # A build without the flags bakes nothing old: only the placeholders stay.
    stage(out, r, **quiet)
    assert _staged(out / "weights") == ["README.md"] and _staged(out / "wheels") == ["README.md"]
    assert (out / "weights" / "README.md").read_text().startswith("<!-- build-context placeholder -->")
    # Re-rendering over a staged model README never writes through the hard link into the source.
    stage(out, r, weights_from=first, **quiet)
    write_files(out, render_files(r, load_compat()))
    assert (first / "README.md").read_bytes() == b"model card"
    with pytest.raises(StagingError, match="overlaps"):
        stage(out, r, weights_from=out / "weights", **quiet)


def test_link_or_copy_never_reads_file_contents(tmp_path, monkeypatch):
    import shutil

    from builder.image import context

    src = _weights(tmp_path / "src", {"shard.safetensors": b"x" * 1000})
    copied = tmp_path / "dst" / "shard.safetensors"
    copied.parent.mkdir()
    shutil.copy2(src / "shard.safetensors", copied)
    linked = tmp_path / "dst" / "linked.safetensors"
    linked.hardlink_to(src / "shard.safetensors")

    def no_reading(self):
        raise AssertionError(f"read_bytes({self}) called")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    inode = copied.stat().st_ino
    context._link_or_copy(src / "shard.safetensors", copied)
    context._link_or_copy(src / "shard.safetensors", linked)
    assert copied.stat().st_ino == inode and os.path.samefile(linked, src / "shard.safetensors")
    # A different file with the same name is replaced.
    monkeypatch.undo()
    (tmp_path / "src" / "shard.safetensors").write_bytes(b"y" * 999)
    context._link_or_copy(src / "shard.safetensors", copied)
    assert copied.read_bytes() == b"y" * 999


def _gated(tmp_path):
    import dataclasses

    from builder.output.render import render_files, write_files

    r = dataclasses.replace(prepare(ROOT / "variants" / "ernie-0.3b.yaml").resolved, gated=True)
    out = tmp_path / "build"
    write_files(out, render_files(r, load_compat()))
    return r, out


def test_gated_download_failure_is_one_paragraph_without_the_token(tmp_path, monkeypatch):
    r, out = _gated(tmp_path)
    hub = types.ModuleType("huggingface_hub")

    def snapshot_download(**kwargs):
        raise RuntimeError(f"401 Client Error for url https://huggingface.co (token {kwargs['token']})")

    hub.snapshot_download = snapshot_download
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    with pytest.raises(StagingError) as info:
        stage(out, r, environ={"HF_TOKEN": "hf_secret_value"}, log=lambda _m: None)
    text = str(info.value)
    assert "hf_secret_value" not in text and "401" in text and "--weights-from" in text
    assert "\n" not in text
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    with pytest.raises(StagingError, match="huggingface_hub"):
        stage(out, r, environ={"HF_TOKEN": "hf_secret_value"}, log=lambda _m: None)


def test_gated_host_download_is_reused_and_its_cache_not_baked(tmp_path, monkeypatch):
    r, out = _gated(tmp_path)
    calls = []
    hub = types.ModuleType("huggingface_hub")

    def snapshot_download(*, local_dir, **kwargs):
        calls.append(kwargs["repo_id"])
        _weights(Path(local_dir), {"model.safetensors": b"w", ".cache/huggingface/download/x.lock": b""})

    hub.snapshot_download = snapshot_download
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    stage(out, r, environ={"HF_TOKEN": "t"}, log=lambda _m: None)
    stage(out, r, environ={"HF_TOKEN": "t"}, log=lambda _m: None)
    assert calls == [r.model_id]
    assert (out / "weights" / "model.safetensors").exists()
    ignore = (out / ".dockerignore").read_text().splitlines()
    assert "weights/.cache" in ignore
