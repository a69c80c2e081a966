"""`build.py test` of a load-balancing variant against a real container: `docker run` without `--local`,
the worker's port published, the health wait (204 -> 200, or a 503 that ends it), the jobs on the HTTP
routes, the openai stream, the log tail on failure, the container removed. The container runs the
in-test worker that follows the runtime's LB contract (tests/deploy/lb_contract_server.py) on the
stand-in rootfs: the same test against a built ernie-0.3b-lb image needs the runtime's LB mode."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import dockerlab
import pytest

from builder.cli import main

pytestmark = pytest.mark.docker

VARIANT = "ernie-0.3b-lb"
TESTS = Path(__file__).resolve().parents[1]
RUNTIME = TESTS.parent / "worker_runtime"


@pytest.fixture(scope="module")
def image(docker_client, tmp_path_factory):
    rootfs = dockerlab.ensure_rootfs(docker_client, None)
    ctx = tmp_path_factory.mktemp("lb-contract")
    shutil.copy(TESTS / "deploy" / "lb_contract_server.py", ctx / "lb_contract_server.py")
    (ctx / "tests").mkdir()
    shutil.copy(TESTS / "served.py", ctx / "tests" / "served.py")  # what the server imports
    # The server reads the route table: its package goes next to it (the table imports nothing else).
    (ctx / "worker_runtime" / "config").mkdir(parents=True)
    for name in ("__init__.py", "config/__init__.py", "config/routes.py"):
        shutil.copy(RUNTIME / name, ctx / "worker_runtime" / name)
    (ctx / "Dockerfile").write_text(
        f"FROM {rootfs}\nCOPY lb_contract_server.py /srv/\nCOPY tests /srv/tests/\n"
        "COPY worker_runtime /srv/worker_runtime\n"
        'ENTRYPOINT ["python3", "/srv/lb_contract_server.py"]\n'
    )
    tag = "i16builder-lb-contract:" + uuid.uuid4().hex[:8]
    docker_client.images.build(path=str(ctx), tag=tag, rm=True, forcerm=True, pull=False)
    yield tag
    docker_client.images.remove(tag, force=True)


def run_test(capsys, image: str, name: str, *extra: str) -> tuple[int, str]:
    argv = ["test", VARIANT, "--image", image, "--no-gpus", "--ready-timeout", "60",
            "--docker-args", f"--name {name}", *extra]  # fmt: skip
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out + err


def assert_removed(docker_client, name: str) -> None:
    assert not docker_client.containers.list(all=True, filters={"name": name}), "container left"


def test_a_load_balancing_container_is_tested_on_its_http_routes(docker_client, capsys, image):
    name = "i16builder-lb-" + uuid.uuid4().hex[:8]
    code, text = run_test(capsys, image, name, "--env", "PORT=8080")
    assert code == 0, text
    assert text.index("health: 204 (initializing)") < text.index("health: 200 (ready)")
    for job in ("native chat", "openai chat", "openai models", "openai stream"):
        assert f"ok   {job}  COMPLETED" in text, text
    assert "4 of 4 job(s) passed" in text
    assert "/ping" in text and "lines of the container's log" not in text
    assert_removed(docker_client, name)


def test_a_dead_worker_ends_the_wait_with_the_log_tail(docker_client, capsys, image):
    name = "i16builder-lb-" + uuid.uuid4().hex[:8]
    code, text = run_test(capsys, image, name, "--docker-args", "-e LB_DEAD=1")
    assert code == 1, text
    assert "health: 503 (unhealthy)" in text and "engine died (health check 503)" in text
    assert "last 50 lines of the container's log:" in text
    assert "load-balancing contract worker on port 80" in text  # the container's own output
    assert_removed(docker_client, name)
