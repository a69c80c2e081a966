"""Session fixtures for the Docker-backed tests: engine client, stand-in base, wheelhouse, registry.

The registry is a pytest-docker service: the fixtures ``docker_compose_*`` and ``docker_cleanup`` below
point pytest-docker's ``docker_services`` at compose.yaml and Docker Compose v2 (requirements-compose.txt).

Nothing here is skipped when Docker is missing: these tests are part of the suite and fail loudly
(`bash .ci/run` installs and starts everything they need).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pytest_docker.plugin import DockerComposeExecutor

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
def docker_compose_command(docker_client) -> str:
    """Compose v2 with the variables compose.yaml needs (the registry's image is built on the rootfs)."""
    return dockerlab.compose_command(dockerlab.ensure_rootfs(docker_client, sys.stderr))


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(dockerlab.COMPOSE_FILE)


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return dockerlab.compose_project_name()


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return dockerlab.COMPOSE_CLEANUP


@pytest.fixture(scope="session")
def registry(docker_services, docker_compose_command, docker_compose_file, docker_compose_project_name):
    """A real registry (Debian's docker-registry), the compose service on a free port of 127.0.0.1."""
    compose = DockerComposeExecutor(docker_compose_command, docker_compose_file, docker_compose_project_name)
    return dockerlab.registry_service(docker_services, compose)


def pytest_collection_modifyitems(items):
    """Tests that need the stand-in base or the registry (both built on a debootstrap rootfs from a Debian
    mirror) or the wheelhouse (pip download) need the network the first time on an engine: `network`."""
    for item in items:
        if {"standin_base", "wheelhouse", "registry"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.network)
