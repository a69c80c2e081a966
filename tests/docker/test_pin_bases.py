"""builder.tools.pin_bases: base images pinned by digest, asked of a real registry (the local one)."""

from __future__ import annotations

import io
import shutil
import uuid

import pytest
import yaml

from builder.compat import load_compat
from builder.image.docker import build_image, push_image
from builder.paths import COMPAT_DIR
from builder.tools import pin_bases

pytestmark = pytest.mark.docker


def test_split_ref_follows_docker_naming():
    assert pin_bases.split_ref("nvidia/cuda:12.6.3-cudnn-devel-ubuntu22.04") == (
        "registry-1.docker.io",
        "nvidia/cuda",
        "12.6.3-cudnn-devel-ubuntu22.04",
    )
    assert pin_bases.split_ref("python") == ("registry-1.docker.io", "library/python", "latest")
    assert pin_bases.split_ref("127.0.0.1:5000/a/b:1") == ("127.0.0.1:5000", "a/b", "1")


def test_every_base_of_the_data_is_asked_for():
    data = yaml.safe_load((COMPAT_DIR / "fastdeploy_releases.yaml").read_text(encoding="utf-8"))
    refs = pin_bases.base_refs(data)
    assert f"{data['registry']}/fastdeploy-cuda-12.6:2.5.0" in refs
    assert set(data["cuda_bases"].values()) <= set(refs)


def test_pins_what_the_registry_serves_and_renders_it(docker_client, standin_base, registry, tmp_path):
    ref = f"{registry.address}/pins/base:{uuid.uuid4().hex[:8]}"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {standin_base}\nLABEL pin.test=1\n")
    build_image(ctx, tags=[ref], labels={}, build_args={}, out=io.StringIO())
    try:
        pushed = push_image([ref], out=io.StringIO())[ref]
    finally:
        docker_client.images.remove(ref)
    data_file = tmp_path / "fastdeploy_releases.yaml"
    shutil.copy(COMPAT_DIR / "fastdeploy_releases.yaml", data_file)
    before = data_file.read_text(encoding="utf-8")

    out = io.StringIO()
    assert pin_bases.run(data_file, [ref], check=True, out=out) == 1  # not pinned yet
    assert data_file.read_text(encoding="utf-8") == before  # --check writes nothing
    assert pin_bases.run(data_file, [ref], check=False, out=out) == 0
    after = data_file.read_text(encoding="utf-8")
    assert yaml.safe_load(after)["base_digests"] == {ref: pushed}
    # Only the block changed: every other line is where it was.
    changed = [line for line in after.splitlines() if line not in before.splitlines()]
    assert changed == ["base_digests:", f'  "{ref}": "{pushed}"'], changed
    assert pin_bases.run(data_file, [ref], check=True, out=out) == 0

    # The compatibility data renders a pinned base as name:tag@digest.
    load_compat.cache_clear()
    shutil.copytree(COMPAT_DIR, tmp_path / "compat", dirs_exist_ok=True)
    data = yaml.safe_load(after)
    data["cuda_bases"]["12.6"] = ref
    (tmp_path / "compat" / "fastdeploy_releases.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    compat = load_compat(tmp_path / "compat")
    assert compat.cuda_base_image("12.6") == f"{ref}@{pushed}"
    load_compat.cache_clear()


def test_unreachable_registry_is_named(tmp_path, capsys):
    data_file = tmp_path / "fastdeploy_releases.yaml"
    shutil.copy(COMPAT_DIR / "fastdeploy_releases.yaml", data_file)
    status = pin_bases.run(data_file, ["127.0.0.1:9/none/base:1"], check=False, out=io.StringIO())
    assert status == 2
    assert "127.0.0.1:9/none/base:1" in capsys.readouterr().err
