"""Session fixtures for the Docker-backed tests: engine client, stand-in base, wheelhouse, registry.

Nothing here is skipped when Docker is missing: these tests are part of the suite and fail loudly
(`bash .ci/run` installs and starts everything they need).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dockerlab


@pytest.fixture(scope="session")
def docker_client():
    import docker

    try:
        client = dockerlab.docker_client()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(
            f"no Docker engine reachable (run `bash .ci/run`, or start dockerd): {exc}", pytrace=False
        )
    return client


@pytest.fixture(scope="session")
def standin_base(docker_client) -> str:
    """Tag of the stand-in FastDeploy base image (built once per engine, reused by later runs)."""
    return dockerlab.ensure_standin_base(docker_client, sys.stderr)


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    return dockerlab.ensure_wheelhouse(sys.stderr)


@pytest.fixture(scope="session")
def fake_weights(tmp_path_factory) -> Path:
    return dockerlab.make_fake_weights(tmp_path_factory.mktemp("weights") / "ernie-0.3b", size_mb=8)


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A real registry (Debian's docker-registry) on a free port of 127.0.0.1."""
    running = dockerlab.start_registry(tmp_path_factory.mktemp("registry"))
    yield running
    running.stop()


def pytest_collection_modifyitems(items):
    """Tests that need the stand-in base (debootstrap from a Debian mirror) or the wheelhouse (pip
    download) need the network the first time on an engine: marked `network`."""
    for item in items:
        if {"standin_base", "wheelhouse"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.network)
