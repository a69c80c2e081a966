"""RunPod's model cache: the snapshot found on a Hugging Face cache tree on disk (exact and lowercased folder
names, a commit or a branch through refs/), the engine started on it, and the fallback or failure when the
cache is missing or incomplete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runtime.conftest import http
from worker_runtime.config.engine_args import EnginePorts, engine_argv, engine_env
from worker_runtime.config.settings import load_flag_table, load_settings
from worker_runtime.engine.model_cache import CacheUnavailable, look_up, plan_weights, repo_folder_name

MODEL = "Org-A/Model-B"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"
FILES = ("config.json", "tokenizer_config.json", "model.safetensors", "tokenizer.model")
PATTERNS = "'*.json' '*.safetensors' '*.model'"


def cache_tree(root: Path, folder: str, files=FILES, commit: str = COMMIT, ref: str | None = "main") -> Path:
    """A Hugging Face cache tree: blobs/, snapshots/<commit>/ of symlinks into blobs, refs/<ref>."""
    repo = root / folder
    (repo / "blobs").mkdir(parents=True)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for i, name in enumerate(files):
        blob = repo / "blobs" / f"blob{i}"
        blob.write_text("{}" if name.endswith(".json") else "weights")
        (snap / name).symlink_to(Path("..", "..", "blobs", blob.name))
    # Another revision next to it: only the one the revision names may be taken.
    (repo / "snapshots" / OTHER).mkdir()
    (repo / "snapshots" / OTHER / "config.json").write_text("{}")
    if ref:
        (repo / "refs").mkdir()
        (repo / "refs" / ref).write_text(commit)
    return snap


def cached_settings(root: Path, **extra: str):
    env = {
        "MODEL": MODEL,
        "MODEL_REVISION": COMMIT,
        "MODEL_SOURCE": "huggingface",
        "SERVED_MODEL_NAME": MODEL,
        "MODEL_CACHED": "true",
        "MODEL_CACHE_FILES": PATTERNS,
        "HF_HUB_CACHE": str(root),
    }
    env.update(extra)
    return load_settings(env, volume_dir=str(root / "no-volume"))


def argv_of(settings) -> list[str]:
    release = load_flag_table()["releases"][settings.fastdeploy_version]
    return engine_argv(settings, release, EnginePorts(1, 2, 3, 4), "python")


def test_folder_name_is_huggingface_hubs() -> None:
    assert repo_folder_name("baidu/ERNIE-4.5-0.3B-Paddle") == "models--baidu--ERNIE-4.5-0.3B-Paddle"


@pytest.mark.parametrize("folder", ["models--Org-A--Model-B", "models--org-a--model-b"])
def test_engine_starts_on_the_snapshot_exact_case_or_lowercased(tmp_path: Path, folder: str) -> None:
    snap = cache_tree(tmp_path, folder)
    plan = plan_weights(cached_settings(tmp_path))
    assert plan.route == "cached" and plan.warning is None
    argv = argv_of(plan.settings)
    assert argv[argv.index("--model") + 1] == str(snap)
    # Local-model semantics: no revision flag, no download source; the served name stays the repository id.
    assert "--revision" not in argv
    assert argv[argv.index("--served-model-name") + 1] == MODEL and plan.served_name == MODEL
    assert "FD_MODEL_SOURCE" not in engine_env(plan.settings, {}, "/logs")
    assert str(snap) in plan.detail and "cached route" in plan.detail


def test_a_branch_is_resolved_through_refs(tmp_path: Path) -> None:
    snap = cache_tree(tmp_path, "models--org-a--model-b", ref="release")
    plan = plan_weights(cached_settings(tmp_path, MODEL_REVISION="release"))
    assert plan.route == "cached" and plan.settings.model == str(snap)
    missing = look_up(str(tmp_path), MODEL, "main", ())
    assert missing.path is None and "no refs/main" in (missing.missing or "")


def test_a_missing_file_falls_back_to_the_download_with_one_warning(tmp_path: Path) -> None:
    cache_tree(tmp_path, "models--org-a--model-b", files=("config.json", "tokenizer_config.json"))
    settings = cached_settings(tmp_path)
    plan = plan_weights(settings)
    assert plan.route == "download" and plan.settings == settings
    assert plan.warning is not None and plan.warning.count("warning:") == 1
    assert "no file matching *.safetensors, *.model" in plan.warning
    argv = argv_of(plan.settings)
    assert argv[argv.index("--model") + 1] == MODEL and argv[argv.index("--revision") + 1] == COMMIT


def test_a_dangling_blob_link_is_a_missing_file(tmp_path: Path) -> None:
    snap = cache_tree(tmp_path, "models--Org-A--Model-B")
    (snap / "model.safetensors").resolve().unlink()
    plan = plan_weights(cached_settings(tmp_path))
    assert plan.route == "download" and "*.safetensors" in (plan.warning or "")


def test_no_cache_and_no_fallback_is_a_paragraph(tmp_path: Path) -> None:
    with pytest.raises(CacheUnavailable) as exc:
        plan_weights(cached_settings(tmp_path, MODEL_CACHE_FALLBACK="false"))
    text = str(exc.value)
    assert "\n" not in text and "MODEL_CACHE_FALLBACK=false" in text
    assert f"no folder models--Org-A--Model-B (in any letter case) in {tmp_path}" in text


def test_the_wrong_revision_is_not_served(tmp_path: Path) -> None:
    cache_tree(tmp_path, "models--Org-A--Model-B", commit=OTHER.replace("f", "e"))
    plan = plan_weights(cached_settings(tmp_path))
    assert plan.route == "download" and f"no snapshot {COMMIT}" in (plan.warning or "")


def test_routes_without_the_cache(tmp_path: Path) -> None:
    def route(**env: str) -> str:
        return plan_weights(load_settings(env, volume_dir=str(tmp_path / "none"))).route

    assert route(MODEL="/models/x") == "baked"
    assert route(MODEL="org/name", MODEL_SOURCE="huggingface") == "download"
    assert route(MODEL="/mnt/x", MODEL_SOURCE="local") == "local"


def test_worker_serves_from_the_cache_and_logs_the_route(tmp_path: Path, local_runtime) -> None:
    snap = cache_tree(tmp_path, "models--org-a--model-b")
    rt = local_runtime(
        MODEL=MODEL, MODEL_REVISION=COMMIT, MODEL_SOURCE="huggingface", SERVED_MODEL_NAME=MODEL,
        MODEL_CACHED="true", MODEL_CACHE_FILES=PATTERNS, HF_HUB_CACHE=str(tmp_path),
    )  # fmt: skip
    argv = rt.engine_argv()
    assert argv[argv.index("--model") + 1] == str(snap)
    rt.wait_output("weights: cached route, on disk after")
    status, body = http("POST", f"{rt.base}/runsync", {"input": {"openai_route": "/v1/models"}})
    assert status == 200 and body["output"][0]["data"][0]["id"] == MODEL


def test_worker_without_the_cache_warns_once_and_downloads(tmp_path: Path, local_runtime) -> None:
    rt = local_runtime(
        MODEL=MODEL, MODEL_REVISION=COMMIT, MODEL_SOURCE="huggingface", SERVED_MODEL_NAME=MODEL,
        MODEL_CACHED="true", HF_HUB_CACHE=str(tmp_path),
    )  # fmt: skip
    rt.wait_output("weights: download route, ready with the engine after")
    assert rt.output.count("warning: the cached model") == 1
    argv = rt.engine_argv()
    assert argv[argv.index("--model") + 1] == MODEL


def test_worker_without_the_cache_and_no_fallback_stops(tmp_path: Path, local_runtime) -> None:
    rt = local_runtime(
        wait_ready=False, MODEL=MODEL, MODEL_REVISION=COMMIT, MODEL_SOURCE="huggingface",
        MODEL_CACHED="true", MODEL_CACHE_FALLBACK="false", HF_HUB_CACHE=str(tmp_path),
    )  # fmt: skip
    assert rt.wait_exit() == 1
    assert "MODEL_CACHE_FALLBACK=false forbids downloading it" in rt.output
    assert "Starting FastDeploy" not in rt.output and "Traceback" not in rt.output


def test_a_shard_named_by_the_weights_index_must_be_there(tmp_path: Path) -> None:
    snap = cache_tree(tmp_path, "models--Org-A--Model-B")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (snap / "model.safetensors.index.json").write_text(json.dumps(index))
    (snap / "model-00001-of-00002.safetensors").write_text("weights")
    plan = plan_weights(cached_settings(tmp_path))
    assert plan.route == "download"
    assert "lacks model-00002-of-00002.safetensors (named by its weights index)" in (plan.warning or "")
    (snap / "model-00002-of-00002.safetensors").write_text("weights")
    assert plan_weights(cached_settings(tmp_path)).route == "cached"


def test_without_a_served_name_the_model_is_served_under_its_repository_id(tmp_path: Path) -> None:
    """SERVED_MODEL_NAME unset: the repository id MODEL names (the engine starts on the snapshot's path
    and gets --served-model-name); a release without the flag answers to the path, and says so."""
    snap = cache_tree(tmp_path, "models--Org-A--Model-B")
    plan = plan_weights(cached_settings(tmp_path, SERVED_MODEL_NAME=""))
    assert plan.route == "cached" and plan.served_name == MODEL
    argv = argv_of(plan.settings)
    assert argv[argv.index("--served-model-name") + 1] == MODEL
    assert argv[argv.index("--model") + 1] == str(snap)
    old = plan_weights(cached_settings(tmp_path, SERVED_MODEL_NAME="", FASTDEPLOY_VERSION="2.1.0"))
    assert old.route == "cached" and old.served_name == str(snap)
    assert "--served-model-name" not in argv_of(old.settings)


def test_baked_weights_are_served_under_their_repository_id_until_model_changes(tmp_path: Path) -> None:
    """The image names its baked folder's repository (BAKED_MODEL_ID), not a served name: the folder is
    served under that id; a MODEL changed to another repository (deploy --env, the Hub form) is served
    under its own; a SERVED_MODEL_NAME set on purpose wins."""
    image = {"MODEL": "/models/ernie-0.3b", "BAKED_MODEL_ID": MODEL, "HF_HUB_CACHE": str(tmp_path)}
    baked = plan_weights(load_settings(image, volume_dir=str(tmp_path / "no-volume")))
    argv = argv_of(baked.settings)
    assert baked.route == "baked" and baked.served_name == MODEL
    assert argv[argv.index("--served-model-name") + 1] == MODEL
    changed = plan_weights(load_settings({**image, "MODEL": "Org-C/Model-D"}, volume_dir=str(tmp_path)))
    assert changed.route == "download" and changed.served_name == "Org-C/Model-D"
    assert "--served-model-name" not in argv_of(changed.settings)  # the engine answers to its MODEL
    named = plan_weights(load_settings({**image, "SERVED_MODEL_NAME": "mine"}, volume_dir=str(tmp_path)))
    assert named.served_name == "mine" and "mine" in argv_of(named.settings)
