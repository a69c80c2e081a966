"""The ernie-0.3b worker image end to end, through the real CLI, on the stand-in FastDeploy base.

One cold build per session (module fixture), then: tags and labels, the weights' own layer, the
container's local endpoint with native jobs and the official OpenAI SDK, SIGTERM, shared-memory warning,
no planted secret anywhere, a code-only rebuild that reuses (and does not re-push) the weights layer,
pushes to a real registry and pulls by digest, and builds of the same directory with BuildKit and the
classic builder.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import dockerlab
import pytest
import requests

pytestmark = pytest.mark.docker

VARIANT = "ernie-0.3b"
WEIGHT_FILE = "model.safetensors"
SIGTERM_BOUND_S = 10.0  # "stops within a few seconds of SIGTERM"


@dataclass
class Build:
    output: str
    tags: list[str]
    out_dir: Path
    args: list[str]

    @property
    def context(self) -> Path:
        found = sorted(self.out_dir.rglob("Dockerfile"))
        assert found, f"no Dockerfile under {self.out_dir}"
        return found[0].parent


@pytest.fixture(scope="module")
def canary() -> dict[str, str]:
    token = "hf_canary" + uuid.uuid4().hex
    return {"HF_TOKEN": token, "REGISTRY_USERNAME": "ci", "REGISTRY_PASSWORD": "pw_canary" + uuid.uuid4().hex}


@pytest.fixture(scope="module")
def session_tag() -> str:
    return "t" + uuid.uuid4().hex[:8]


def _build_args(out_dir: Path, base: str, weights: Path, wheels: Path, registry, tag: str) -> list[str]:
    return [
        "--variant", VARIANT,
        "--base-image", base,
        "--weights-from", str(weights),
        "--wheelhouse", str(wheels),
        "--out", str(out_dir),
        "--registry", f"{registry.address}/e2e",
        "--tag", tag,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def made_tags(docker_client):
    """Tags and ids the builds of this module make; removed at the end (new registry port per session)."""
    tags: list[str] = []
    yield tags
    for tag in dict.fromkeys(tags):
        try:
            docker_client.images.remove(tag, force=True)
        except Exception as exc:
            print(f"cleanup: could not remove {tag}: {exc}")


@pytest.fixture(scope="module")
def run_builder(
    standin_base, wheelhouse, fake_weights, registry, canary, session_tag, made_tags, tmp_path_factory
):
    """``build.py`` for the test variant into a fresh render folder; every tag it makes is cleaned up.

    Returns ``run(render_dir, tag_suffix="", extra=(), repo=None) -> (result, args, out_dir)``.
    """

    def run(
        render_dir: str, tag_suffix: str = "", extra: tuple[str, ...] = (), repo: Path | None = None
    ) -> tuple[subprocess.CompletedProcess, list[str], Path]:
        out_dir = tmp_path_factory.mktemp(render_dir)
        args = _build_args(
            out_dir, standin_base, fake_weights, wheelhouse, registry, session_tag + tag_suffix
        )
        result = dockerlab.run_build([*args, *extra], repo=repo or dockerlab.REPO_ROOT, env=canary)
        made_tags.extend(dockerlab.tags_from_output(result.stdout))
        assert result.returncode == 0, result.stdout[-6000:]
        return result, args, out_dir

    return run


@pytest.fixture(scope="module")
def built(docker_client, run_builder, made_tags) -> Build:
    result, args, out_dir = run_builder("render")
    tags = dockerlab.tags_from_output(result.stdout)
    assert tags, result.stdout[-3000:]
    made_tags.append(docker_client.images.get(tags[0]).id)  # a later build moves the tags away from it
    return Build(output=result.stdout, tags=tags, out_dir=out_dir, args=args)


@pytest.fixture(scope="module")
def image(docker_client, built):
    return docker_client.images.get(built.tags[0])


@pytest.fixture(scope="module")
def worker(docker_client, image):
    container, port = dockerlab.start_worker(docker_client, image.id)
    try:
        dockerlab.wait_ready(container, port)
        yield container, port
    finally:
        container.remove(force=True)


# --- the image -------------------------------------------------------------------------------------------


def test_tags_and_labels(built, image, registry, session_tag):
    assert all(t.startswith(f"{registry.address}/e2e/") for t in built.tags)
    assert any(t.endswith(f":{session_tag}") for t in built.tags)
    assert any(t.endswith(f":{VARIANT}") for t in built.tags)
    assert any(":" + VARIANT + "-" in t for t in built.tags)
    assert set(built.tags) <= set(image.tags)
    labels = image.labels
    for key in ("source", "version", "revision", "created"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    variant = json.loads(labels["io.runpod.fastdeploy.variant"])
    assert variant["name"] == VARIANT


def test_build_showed_progress_and_checked_the_base(built):
    assert "Step " in built.output or "#" in built.output
    assert "base image ok" in built.output


def test_entrypoint_and_env(image):
    config = image.attrs["Config"]
    assert config["Entrypoint"][:2] == ["tini", "--"]
    assert config["Entrypoint"][2:] == ["python3", "-m", "worker_runtime"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["MODEL"] == f"/models/{VARIANT}"
    assert env["BAKED_MODEL_ID"] == "baidu/ERNIE-4.5-0.3B-Paddle" and "SERVED_MODEL_NAME" not in env
    assert env["WORKER_DEPS_DIR"] == "/opt/worker/deps"


def test_weights_live_in_one_layer_of_their_own(docker_client, image, tmp_path):
    _config, layers, _files = dockerlab.save_image(docker_client, image.id, tmp_path)
    holding = dockerlab.layers_containing(layers, f"models/{VARIANT}/{WEIGHT_FILE}")
    assert len(holding) == 1, holding
    names = [n for n in layers[holding[0]].names if n.rstrip("/") not in ("models", ".")]
    assert all(n.startswith(f"models/{VARIANT}") or n == "models" for n in names), names[:20]
    # Runtime code comes after the weights, so a code change cannot touch them.
    code = dockerlab.layers_containing(layers, "opt/worker/worker_runtime/__init__.py")
    assert code and code[0] > holding[0]


# --- the container ----------------------------------------------------------------------------------------


def test_native_job_through_local_endpoint(worker):
    _container, port = worker
    response = requests.post(
        f"http://127.0.0.1:{port}/runsync",
        json={
            "input": {
                "messages": [{"role": "user", "content": "Hello"}],
                "sampling_params": {"max_tokens": 8},
            }
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "COMPLETED", body
    assert body["output"]


def test_openai_sdk_through_local_endpoint(worker):
    from openai import OpenAI

    _container, port = worker
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/openai/v1", api_key="local", timeout=60, max_retries=0)
    models = client.models.list()
    model = models.data[0].id
    assert model == "baidu/ERNIE-4.5-0.3B-Paddle"  # the baked folder is served under BAKED_MODEL_ID
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hi"}], max_tokens=8
    )
    assert reply.choices[0].message.content
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hi"}], max_tokens=8, stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert "".join(pieces)


def test_sigterm_stops_the_container_within_seconds(docker_client, image):
    container, port = dockerlab.start_worker(docker_client, image.id)
    try:
        dockerlab.wait_ready(container, port)
        seconds, code = dockerlab.stop_with_sigterm(container, timeout=60)
        assert seconds < SIGTERM_BOUND_S, container.logs().decode(errors="replace")[-3000:]
        assert code in (0, 143), (code, container.logs().decode(errors="replace")[-3000:])
    finally:
        container.remove(force=True)


def test_small_shm_is_warned_about(docker_client, image):
    container, port = dockerlab.start_worker(docker_client, image.id, shm_size=None)  # Docker's 64 MB
    try:
        dockerlab.wait_ready(container, port)
        logs = container.logs().decode(errors="replace")
        assert "/dev/shm" in logs, logs[-3000:]
    finally:
        container.remove(force=True)


# --- secrets ----------------------------------------------------------------------------------------------


def test_planted_tokens_appear_nowhere(docker_client, built, image, canary, tmp_path):
    cli = dockerlab.classic_command()[0][0]
    needles = [canary["HF_TOKEN"], canary["REGISTRY_PASSWORD"]]
    history = subprocess.run(
        [cli, "history", "--no-trunc", image.id], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    inspect = subprocess.run(
        [cli, "inspect", image.id], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    config, layers, files = dockerlab.save_image(docker_client, image.id, tmp_path)
    for needle in needles:
        assert needle not in built.output
        assert needle not in history
        assert needle not in inspect
        assert dockerlab.grep_saved(config, layers, files, needle.encode()) == []
        for path in built.out_dir.rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                assert needle.encode() not in path.read_bytes(), path


# --- registry and rebuilds --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pushed(built, canary):
    result = dockerlab.run_build([*built.args, "--push"], env=canary)
    assert result.returncode == 0, result.stdout[-6000:]
    return result.stdout


def test_push_prints_a_digest_per_tag_and_pull_by_digest(docker_client, built, pushed, canary):
    digests = dockerlab.digests_from_output(pushed)
    assert set(built.tags) <= set(digests), pushed[-3000:]
    assert canary["REGISTRY_PASSWORD"] not in pushed
    ref = built.tags[0]
    # The --push run built again (a new `created` label), so read the id of what was pushed.
    pushed_id = docker_client.images.get(ref).id
    repository = ref.rsplit(":", 1)[0]
    digest = digests[ref]
    for tag in built.tags:
        docker_client.images.remove(tag)
    try:
        pulled = docker_client.images.pull(f"{repository}@{digest}")
        assert pulled.id == pushed_id
        assert pulled.attrs["RepoDigests"] and f"{repository}@{digest}" in pulled.attrs["RepoDigests"]
    finally:
        for tag in built.tags:
            repo, _, name = tag.rpartition(":")
            docker_client.images.get(f"{repository}@{digest}").tag(repo, name)


@pytest.fixture(scope="module")
def code_change(built, pushed, run_builder, tmp_path_factory):
    repo = dockerlab.copy_repo(tmp_path_factory.mktemp("repo") / "copy")
    target = repo / "worker_runtime" / "__init__.py"
    target.write_text(target.read_text() + f"\n# code-only change {uuid.uuid4().hex}\n")
    result, _args, _out_dir = run_builder("render2", "-code", ("--push",), repo)
    return result.stdout


def test_code_change_reuses_and_does_not_repush_weights(docker_client, image, code_change, tmp_path):
    tags = dockerlab.tags_from_output(code_change)
    new = docker_client.images.get(tags[0])
    assert new.id != image.id
    _config, layers, _files = dockerlab.save_image(docker_client, image.id, tmp_path)
    weights_index = dockerlab.layers_containing(layers, f"models/{VARIANT}/{WEIGHT_FILE}")[0]
    old_layers = image.attrs["RootFS"]["Layers"]
    new_layers = new.attrs["RootFS"]["Layers"]
    # Everything up to and including the weights is the same layer; the runtime code differs.
    assert new_layers[: weights_index + 1] == old_layers[: weights_index + 1]
    assert new_layers != old_layers
    weights_diff_id = old_layers[weights_index]
    # The build took the weights from the cache ...
    lines = code_change.splitlines()
    steps = [i for i, line in enumerate(lines) if "COPY --from=weights" in line]
    assert steps and "Using cache" in "\n".join(lines[steps[-1] : steps[-1] + 3]), code_change[-4000:]
    # ... and the registry already had them.
    short = weights_diff_id.split(":")[1][:12]
    assert f"{short}: Layer already exists" in code_change, code_change[-4000:]
    assert f"{short}: Pushed" not in code_change


def test_buildkit_builds_the_rendered_directory(standin_base, built, session_tag):
    argv, env = dockerlab.buildkit_command()
    tag = f"fdrw-test/buildkit:{session_tag}"
    result = dockerlab.cli_build((argv, env), standin_base, tag, built.context)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    check = subprocess.run(
        [argv[0], "run", "--rm", "--entrypoint", "python3", tag, "-c",
         "import os, worker_runtime; print(sorted(os.listdir(os.environ['MODEL'])))"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    subprocess.run([argv[0], "rmi", tag], capture_output=True, timeout=120)
    assert check.returncode == 0, check.stderr
    assert WEIGHT_FILE in check.stdout


def test_classic_builder_cli_builds_the_rendered_directory(standin_base, built, session_tag):
    argv, env = dockerlab.classic_command()
    tag = f"fdrw-test/classic:{session_tag}"
    result = dockerlab.cli_build((argv, env), standin_base, tag, built.context)
    subprocess.run([argv[0], "rmi", tag], capture_output=True, timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
