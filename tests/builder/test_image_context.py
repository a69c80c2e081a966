"""builder.image.context: staging weights and wheels into a build directory (reset per build, hard links,
no byte comparison of shards, host download of gated models without the token leaking)."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from builder.compat import load_compat
from builder.image.context import StagingError, stage
from builder.variant.pipeline import prepare
from tests.builder.helpers import MODEL_FOLDER, ROOT, model_folder


def test_staging_links_weights_and_wheels(tmp_path):
    r = prepare(ROOT / "variants" / "ernie-0.3b.yaml").resolved
    src = model_folder(tmp_path / "model", {"model.safetensors": b"w" * 10, "sub/config.json": b"{}"})
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
    first = model_folder(tmp_path / "a", {"a.safetensors": b"a", "README.md": b"model card"})
    second = model_folder(tmp_path / "b", {"b.safetensors": b"b"})
    wheels = _weights(tmp_path / "wh", {"runpod-1.0-py3-none-any.whl": b"z"})
    quiet = {"log": lambda _m: None, "environ": {}}
    stage(out, r, weights_from=first, wheelhouse=wheels, **quiet)
    assert _staged(out / "weights") == sorted(["README.md", "a.safetensors", *MODEL_FOLDER])
    # A second --weights-from replaces the first set instead of merging with it.
    stage(out, r, weights_from=second, **quiet)
    assert _staged(out / "weights") == sorted(["README.md", "b.safetensors", *MODEL_FOLDER])
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
