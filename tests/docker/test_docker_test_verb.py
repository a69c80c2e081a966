"""`build.py test`: the variant's tests.json jobs against a container of the ernie-0.3b image built on the
stand-in base (one build per module, cached layers from the other image tests), through main(argv), and
the load-balancing variant's image on its HTTP routes.
A healthy image passes every job; an engine that fails to start and a job that fails exit 1 with the
container's log tail; the container is removed every time."""

from __future__ import annotations

import re
import uuid

import dockerlab
import pytest

from builder.cli import main

pytestmark = pytest.mark.docker

VARIANT = "ernie-0.3b"


def _built(variant, prefix, docker_client, standin_base, wheelhouse, fake_weights, tmp_path_factory):
    """Build `variant` on the stand-in base; yield its versioned tag, remove its tags afterwards."""
    tag = prefix + uuid.uuid4().hex[:8]
    out_dir = tmp_path_factory.mktemp(f"{prefix}-render")
    result = dockerlab.run_build(
        ["build", variant, "--base-image", standin_base, "--weights-from", str(fake_weights),
         "--wheelhouse", str(wheelhouse), "--out", str(out_dir), "--registry", "127.0.0.1:9/verify",
         "--tag", tag]
    )  # fmt: skip
    tags = dockerlab.tags_from_output(result.stdout)
    assert result.returncode == 0 and tags, result.stdout[-6000:]
    yield next(t for t in tags if t.endswith(":" + tag))
    for t in tags:
        try:
            docker_client.images.remove(t, force=True)
        except Exception as exc:
            print(f"cleanup: could not remove {t}: {exc}")


@pytest.fixture(scope="module")
def image(docker_client, standin_base, wheelhouse, fake_weights, tmp_path_factory):
    yield from _built(
        VARIANT, "verify", docker_client, standin_base, wheelhouse, fake_weights, tmp_path_factory
    )


def run_test(capsys, image: str, *extra: str) -> tuple[int, str]:
    code = main(["test", VARIANT, "--image", image, "--no-gpus", "--ready-timeout", "120", *extra])
    out, err = capsys.readouterr()
    return code, out + err


def assert_removed(docker_client, text: str) -> None:
    found = re.search(r"as container ([0-9a-f]{12})", text)
    assert found, text
    assert not docker_client.containers.list(all=True, filters={"id": found.group(1)}), "container left"


def test_every_job_of_the_rendered_tests_json_passes(docker_client, capsys, image):
    code, text = run_test(capsys, image)
    assert code == 0, text
    for name in ("native chat", "openai chat", "openai models"):
        assert re.search(rf"^ok   {name}  COMPLETED  \d+\.\d s  \S", text, re.MULTILINE), text
    assert "worker ready after" in text and "3 of 3 job(s) passed" in text
    assert "lines of the container's log" not in text
    assert_removed(docker_client, text)


def test_an_engine_that_fails_to_start_exits_1_with_the_log_tail(docker_client, capsys, image):
    code, text = run_test(capsys, image, "--docker-args", "-e FD_STANDIN_CRASH_AT_START=3")
    assert code == 1, text
    assert "the container stopped before it was ready" in text
    assert "last 50 lines of the container's log:" in text
    assert "Failed to launch worker processes" in text  # the engine's own message, from the log
    assert_removed(docker_client, text)


def test_a_failing_job_exits_1_with_its_error_and_the_log_tail(docker_client, capsys, image):
    code, text = run_test(capsys, image, "--env", "FD_STANDIN_HTTP_STATUS=500")
    assert code == 1, text
    assert re.search(r"^FAIL native chat  FAILED  \d+\.\d s  \S", text, re.MULTILINE), text
    assert "last 50 lines of the container's log:" in text
    assert_removed(docker_client, text)


@pytest.fixture(scope="module")
def lb_image(docker_client, standin_base, wheelhouse, fake_weights, tmp_path_factory):
    """The load-balancing variant built like `image`: the same layers, another ENDPOINT_TYPE default."""
    yield from _built(
        "ernie-0.3b-lb", "verifylb", docker_client, standin_base, wheelhouse, fake_weights, tmp_path_factory
    )


def test_a_load_balancing_image_is_tested_on_its_routes_after_204_then_200(docker_client, capsys, lb_image):
    """The real worker in load-balancing mode (not a contract stand-in): the health check answers 204 while
    the engine loads, then 200; each tests.json job goes to its route and one chat streams through the
    openai SDK."""
    code = main(
        ["test", "ernie-0.3b-lb", "--image", lb_image, "--no-gpus", "--ready-timeout", "120",
         "--env", "FD_STANDIN_LOAD_DELAY=4"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    text = out + err
    assert code == 0, text
    assert "against its load-balancing HTTP server" in text
    assert text.index("health: 204 (") < text.index("health: 200 ("), text
    for name in ("native chat", "openai chat", "openai models"):
        assert re.search(rf"^ok   {name}  ", text, re.MULTILINE), text
    assert "4 of 4 job(s) passed" in text, text
    assert_removed(docker_client, text)
