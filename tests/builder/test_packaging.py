"""`pip install .` gives a working `fastdeploy-runpod` command that finds its templates and variants.

The install runs offline (`--no-deps --no-build-isolation`: setuptools from requirements-dev.txt) from a
copy of the sources, into a target folder; the installed command renders the same bytes as the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builder.helpers import ROOT

SOURCES = ("pyproject.toml", "README.md", "builder", "worker_runtime", "templates", "variants", "docs")


def _packages_on_disk() -> list[str]:
    found = []
    for top in ("builder", "worker_runtime"):
        for init in sorted((ROOT / top).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT)
            if "__pycache__" not in rel.parts:
                found.append(".".join(rel.parts))
    return found


def test_pyproject_lists_every_package():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(config["packages"]) - set(config["package-dir"])
    assert listed == set(_packages_on_disk())


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("pip")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy(path, src / name)
    target = tmp / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--no-index", "--no-compile", "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def _command(installed: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(installed)}
    return subprocess.run(
        [sys.executable, str(installed / "bin" / "fastdeploy-runpod"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_installed_command_renders_what_the_checkout_renders(installed, tmp_path):
    from builder.compat import load_compat
    from builder.output.render import render_files
    from builder.variant.pipeline import prepare

    rendered = _command(installed, "render", "ernie-0.3b", cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    out = tmp_path / "build" / "ernie-0.3b"  # ./build of the working directory
    expected = render_files(prepare(ROOT / "variants" / "ernie-0.3b.yaml").resolved, load_compat())
    actual = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != ".rendered"
    }
    assert actual == expected
    imported = subprocess.run(
        [sys.executable, "-c", "import builder.paths as p; print(p.__file__, p.CHECKOUT)"],
        cwd=tmp_path, env={"PYTHONPATH": str(installed), "PATH": os.environ.get("PATH", "")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert imported.stdout.split() == [str(installed / "builder" / "paths.py"), "False"]


def test_version_has_one_copy():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'version = { attr = "builder.__version__" }' in text
    assert '\nversion = "' not in text


MINE = """\
extends: _base
name: mine
title: Mine
description: A user's own variant beside no base file.
model: {id: baidu/ERNIE-4.5-0.3B-Paddle}
image: {repository: docker.io/me/fastdeploy-worker}
"""


def test_installed_command_reads_the_working_directorys_variants_with_the_packaged_base(installed, tmp_path):
    (tmp_path / "variants").mkdir()
    (tmp_path / "variants" / "mine.yaml").write_text(MINE)
    listed = _command(installed, "list", cwd=tmp_path)
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == ["mine"]  # ./variants wins
    rendered = _command(installed, "render", "mine", cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    assert (tmp_path / "build" / "mine" / "Dockerfile").is_file()
    packaged = str(installed / "builder" / "variants")
    shipped = _command(installed, "render", "ernie-0.3b", "--variants-dir", packaged, cwd=tmp_path)
    assert shipped.returncode == 0, shipped.stderr
    (tmp_path / "variants" / "mine.yaml").write_text(MINE.replace("extends: _base", "extends: _bsae"))
    missing = _command(installed, "render", "mine", cwd=tmp_path)
    assert missing.returncode == 2 and "(did you mean '_base'?)" in missing.stderr
    allowed = missing.stderr.split("allowed: ", 1)[1]
    assert "mine" not in allowed.split(" (did you mean")[0]


def test_installed_messages_point_to_a_page_the_package_ships(installed, tmp_path):
    result = _command(installed, "deploy", "ernie-0.3b", "--registry", "docker.io/me", "--dry-run",
                      "--env", "MAX_MODEL_LENGTH=1", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    page = tmp_path / result.stderr.rsplit("the settings are listed in ", 1)[1].strip()  # from its cwd
    assert page.is_file() and page.read_text() == (ROOT / "docs" / "settings.md").read_text()
