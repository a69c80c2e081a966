"""Fixtures of the builder tests: the CLI in-process (`cli`), variant files written to a temp folder
(`write_variant`), the check of a refused variant file (`refused`), builder.image.docker without an engine
(`fake_docker`), the model hub (`hub`, a local fake); every test runs from the repository root.
Constants: tests/builder/helpers.py."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.cli import main
from tests.builder.fake_hub import FakeHub
from tests.builder.helpers import ROOT, Ran


@pytest.fixture(autouse=True)
def _in_repository_root(monkeypatch):
    """Every builder test runs from the repository root (paths in messages are shown relative to it),
    without the host's choice of registry."""
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("FASTDEPLOY_RUNPOD_REGISTRY", raising=False)


@pytest.fixture(scope="session")
def _hub_server() -> Iterator[FakeHub]:
    fake = FakeHub(every_main=True)
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def hub(_hub_server: FakeHub, monkeypatch) -> FakeHub:
    """The model hub every builder test talks to (HF_ENDPOINT): a local fake on which every repository's
    `main` is `fake_hub.commit_of(repo)`, so a build that bakes a branch asks it, never the internet.
    One server for the session, reset before each test (a server per test cost its start and stop)."""
    _hub_server.reset()
    monkeypatch.setenv("HF_ENDPOINT", _hub_server.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return _hub_server


@pytest.fixture
def cli(capsys):
    """`build.py ARGS` in-process: `main(argv)`, output captured."""

    def run(*args: str) -> Ran:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


@pytest.fixture
def write_variant(tmp_path):
    """Write a variant file (dedented YAML text) into a temp variants folder with a copy of the base."""
    folder = tmp_path / "variants"
    folder.mkdir()
    (folder / "_base.yaml").write_bytes((ROOT / "variants" / "_base.yaml").read_bytes())

    def write(name: str, text: str) -> Path:
        path = folder / f"{name}.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def refused(cli, write_variant):
    """refused(case, text, fragments): rendering the file exits 2, names it, shows every fragment, writes
    nothing, and prints no traceback."""

    def check(case: str, text: str, fragments: list[str]) -> Ran:
        path = write_variant(case, text.replace("{name}", case))
        out = path.parent.parent / "out"
        result = cli("--variant", str(path), "--render-only", "--out", str(out))
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert f"{case}.yaml" in result.stderr
        for fragment in fragments:
            assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"
        assert not out.exists(), "nothing may be written for an invalid variant"
        return result

    return check


@pytest.fixture
def fake_docker(monkeypatch):
    """builder.image.docker without an engine: build_image and push_image record their calls in the
    returned dict ("build": (context, tags, labels, build args), "push": tags); the build of an image
    whose first tag contains a name put in its "fail" set raises ImageError."""
    from builder.image import docker

    calls: dict = {"build": [], "push": [], "fail": set()}

    def build_image(context_dir, *, tags, labels, build_args, out, cache_from=()):
        calls["build"].append((context_dir, list(tags), dict(labels), dict(build_args)))
        if any(name in tags[0] for name in calls["fail"]):
            raise docker.ImageError(f"The base image of {tags[0]} could not be pulled.")
        return "sha256:image"

    def push_image(tags, *, out):
        calls["push"].append(list(tags))
        return {t: "sha256:" + "0" * 64 for t in tags}

    monkeypatch.setattr(docker, "build_image", build_image)
    monkeypatch.setattr(docker, "push_image", push_image)
    return calls
