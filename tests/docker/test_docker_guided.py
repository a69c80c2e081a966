"""An enabled variant's image (ernie-21b-a3b-thinking: xgrammar backend, ernie-x1 tool parser) built on the
stand-in base, its guided decoding layer installed from the wheelhouse (stand-in wheels of the pins that
need CUDA), then `build.py test` against a container of it: the structured-output and tool-call jobs pass;
with the stand-in answering invalid JSON, or JSON that breaks the schema, the structured-output job fails
naming the error."""

from __future__ import annotations

import os
import re
import uuid

import dockerlab
import pytest

from builder.cli import main

pytestmark = pytest.mark.docker

VARIANT = "ernie-21b-a3b-thinking"


@pytest.fixture(scope="module")
def wheels(wheelhouse, tmp_path_factory):
    return dockerlab.guided_wheelhouse(wheelhouse, tmp_path_factory.mktemp("guided-wheels"))


def build(base: str, wheels, fake_weights, out_dir, *, umask: int | None = None) -> list[str]:
    """`build.py build` of the variant on ``base``; the tags it reported."""
    tag = "guided" + uuid.uuid4().hex[:8]
    old = os.umask(umask) if umask is not None else None
    try:
        result = dockerlab.run_build(
            ["build", VARIANT, "--base-image", base, "--weights-from", str(fake_weights),
             "--wheelhouse", str(wheels), "--out", str(out_dir), "--registry", "127.0.0.1:9/verify",
             "--tag", tag]
        )  # fmt: skip
    finally:
        if old is not None:
            os.umask(old)
    tags = dockerlab.tags_from_output(result.stdout)
    assert result.returncode == 0 and tags, result.stdout[-6000:]
    return sorted(tags, key=lambda t: not t.endswith(":" + tag))


@pytest.fixture(scope="module")
def image(docker_client, standin_base, wheels, fake_weights, tmp_path_factory):
    tags = build(standin_base, wheels, fake_weights, tmp_path_factory.mktemp("guided-render"))
    yield tags[0]
    for t in tags:
        try:
            docker_client.images.remove(t, force=True)
        except Exception as exc:
            print(f"cleanup: could not remove {t}: {exc}")


def test_a_clean_rebuild_gives_the_same_layers_the_guided_one_included(
    docker_client, standin_base, image, wheels, fake_weights, tmp_path_factory
):
    """From a fresh base copy (no build cache) and another umask: every data layer is the same, and the
    guided one sits between the weights and the runtime's packages."""
    nonce = uuid.uuid4().hex[:10]
    try:
        base = dockerlab.fresh_base(docker_client, standin_base, nonce)
        again = build(base, wheels, fake_weights, tmp_path_factory.mktemp("guided-again"), umask=0o077)[0]
        first = dockerlab.layer_ids(docker_client, image, standin_base)
        assert dockerlab.layer_ids(docker_client, again, base) == first
        _config, layers, _files = dockerlab.save_image(docker_client, image, tmp_path_factory.mktemp("save"))
        below = len(docker_client.images.get(standin_base).attrs["RootFS"]["Layers"])
        order = [
            dockerlab.layers_containing(layers, path)
            for path in (
                f"models/{VARIANT}/model.safetensors",
                "opt/guided/xgrammar/__init__.py",
                "opt/worker/deps/runpod/__init__.py",
                "opt/worker/worker_runtime/__init__.py",
            )
        ]
        assert [[i - below for i in found] for found in order] == [[0], [1], [2], [3]]
        assert len(first) == 4
    finally:
        dockerlab.remove_nonce_images(docker_client, nonce)


def run_test(capsys, image: str, *extra: str) -> tuple[int, str]:
    code = main(["test", VARIANT, "--image", image, "--no-gpus", "--ready-timeout", "120", *extra])
    out, err = capsys.readouterr()
    return code, out + err


def test_the_guided_layer_holds_the_pins_and_the_engine_gets_the_backend(docker_client, image):
    script = "ls /opt/guided; echo PYTHONPATH=$PYTHONPATH $GUIDED_DECODING_BACKEND"
    listing = docker_client.containers.run(image, entrypoint=["sh", "-c", script], remove=True).decode()
    assert "xgrammar" in listing and "torch" in listing and "torch-2.8.0.dist-info" in listing
    assert "PYTHONPATH=/opt/worker/deps:/opt/guided xgrammar" in listing


def test_structured_output_and_tool_call_jobs_pass(capsys, image):
    code, text = run_test(capsys, image)
    assert code == 0, text
    for name in ("structured output", "tool call"):
        assert re.search(rf"^ok   {name}  COMPLETED  ", text, re.MULTILINE), text
    assert "5 of 5 job(s) passed" in text, text


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("json", "the answer is not JSON"),
        (
            "schema",
            "does not satisfy the job's JSON schema at (the top level): 'city' is a required property",
        ),
    ],
)
def test_a_structured_answer_the_schema_refuses_fails_the_job_naming_why(capsys, image, mode, expected):
    code, text = run_test(capsys, image, "--env", f"FD_STANDIN_GUIDED_BREAK={mode}")
    assert code == 1, text
    line = next(ln for ln in text.splitlines() if ln.startswith("FAIL structured output"))
    assert "COMPLETED" in line and expected in line, line
    assert re.search(r"^ok   tool call  ", text, re.MULTILINE), text
