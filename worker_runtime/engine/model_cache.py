"""Where the worker's weights come from, decided once at start: baked into the image, a local path,
RunPod's model cache, or a download by the engine (``plan_weights``).

RunPod's model cache (runpod/docs ``serverless/endpoints/model-caching.mdx``) mounts the Hugging Face
model the endpoint names under ``/runpod-volume/huggingface-cache/hub`` in the Hugging Face cache layout:
``models--{org}--{name}/snapshots/{commit}/`` holds the files, ``refs/{branch}`` the commit a branch
pointed to. RunPod's store may lowercase the folder name: it is matched case-insensitively (sources
in docs/upstream-notes.md).

Pure apart from reading the cache tree; standard library only.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Any

from worker_runtime.config.catalog import Settings
from worker_runtime.config.checkpoint import UnreadableIndex, missing_shards
from worker_runtime.config.release import load_flag_table, spelling

DEFAULT_HUB_CACHE = "/runpod-volume/huggingface-cache/hub"
DEFAULT_REVISION = "main"
COMMIT = re.compile(r"^[0-9a-f]{40}$")
# FastDeploy reads the model's config first: a snapshot without it is never complete.
ALWAYS_REQUIRED = ("config.json",)


class CacheUnavailable(Exception):
    """The cached model cannot be used and MODEL_CACHE_FALLBACK=false forbids the download."""


@dataclass(frozen=True)
class Lookup:
    """A usable snapshot (``path``, ``commit``), or what was missing (``missing``)."""

    path: str | None = None
    commit: str | None = None
    missing: str | None = None


@dataclass(frozen=True)
class WeightsPlan:
    route: str  # "baked" | "local" | "cached" | "download"
    settings: Settings  # what the engine starts with
    served_name: str  # what clients send as `model`: the repository id on every route
    detail: str  # one line for the log
    warning: str | None = None  # the one fallback warning
    lookup_seconds: float = 0.0  # time to find the weights on disk (0 for a download)

    def ready_line(self, engine_seconds: float) -> str:
        """What the log says once the engine is ready: the route and how long the weights took."""
        if self.route == "download":
            return (
                f"weights: download route, ready with the engine after {engine_seconds:.1f} s "
                "(the engine downloads them before loading)"
            )
        return (
            f"weights: {self.route} route, on disk after {self.lookup_seconds:.2f} s; "
            f"engine ready after {engine_seconds:.1f} s"
        )


def repo_folder_name(model_id: str) -> str:
    """``models--{org}--{name}``: huggingface_hub's folder of a model repository."""
    return "--".join(["models", *model_id.split("/")])


def find_repo_dir(root: str, model_id: str) -> str | None:
    """The model's folder under ``root``: its exact name, else one equal to it ignoring case."""
    name = repo_folder_name(model_id)
    exact = os.path.join(root, name)
    if os.path.isdir(exact):
        return exact
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return None
    for entry in entries:
        if entry.lower() == name.lower() and os.path.isdir(os.path.join(root, entry)):
            return os.path.join(root, entry)
    return None


def resolve_commit(repo_dir: str, revision: str) -> str | None:
    """The commit a revision names: a commit id itself, a branch or tag through ``refs/``."""
    if COMMIT.match(revision):
        return revision
    ref = os.path.join(repo_dir, "refs", revision)
    try:
        with open(ref, encoding="utf-8") as f:
            commit = f.read().strip()
    except OSError:
        return None
    return commit or None


def snapshot_files(path: str) -> list[str]:
    """Regular files under ``path`` (symlinks into ``blobs/`` followed; a dangling one is no file)."""
    found = []
    for folder, _dirs, files in os.walk(path, followlinks=True):
        for name in files:
            full = os.path.join(folder, name)
            if os.path.isfile(full):
                found.append(os.path.relpath(full, path).replace(os.sep, "/"))
    return found


def missing_patterns(files: list[str], patterns: tuple[str, ...]) -> list[str]:
    """The patterns (``config.json`` always first) that match none of ``files`` (paths or base names)."""
    wanted = list(dict.fromkeys((*ALWAYS_REQUIRED, *patterns)))
    return [p for p in wanted if not any(fnmatch(f, p) or fnmatch(f.rsplit("/", 1)[-1], p) for f in files)]


def look_up(root: str, model_id: str, revision: str | None, patterns: tuple[str, ...]) -> Lookup:
    """The snapshot of ``model_id`` at ``revision`` under ``root`` if it holds every pattern."""
    revision = revision or DEFAULT_REVISION
    repo_dir = find_repo_dir(root, model_id)
    if repo_dir is None:
        return Lookup(missing=f"no folder {repo_folder_name(model_id)} (in any letter case) in {root}")
    commit = resolve_commit(repo_dir, revision)
    if commit is None:
        return Lookup(missing=f"no refs/{revision} in {repo_dir} to tell which snapshot is {revision}")
    path = os.path.join(repo_dir, "snapshots", commit)
    if not os.path.isdir(path):
        return Lookup(missing=f"no snapshot {commit} in {os.path.join(repo_dir, 'snapshots')}")
    files = snapshot_files(path)
    left_out = missing_patterns(files, patterns)
    if left_out:
        return Lookup(missing=f"snapshot {path} has no file matching {', '.join(left_out)}")
    try:
        shards = missing_shards(path, files)
    except UnreadableIndex as exc:
        shards = [exc.index]
    if shards:
        return Lookup(missing=f"snapshot {path} lacks {', '.join(shards)} (named by its weights index)")
    return Lookup(path=path, commit=commit)


def plan_weights(
    settings: Settings,
    clock: Callable[[], float] = time.monotonic,
    release: Mapping[str, Any] | None = None,
) -> WeightsPlan:
    """The route the weights take and the settings the engine starts with.

    Unset SERVED_MODEL_NAME: clients send MODEL (the engine's own default when it starts on MODEL).
    Cached: MODEL becomes the snapshot path with local-model semantics (no --revision, no download
    source); the served name stays the repository id, passed as --served-model-name when the release
    (``release``, default: the flag table's entry of the settings' release) has the flag. A missing or
    incomplete cache falls back to the download route with one warning, or raises CacheUnavailable when
    MODEL_CACHE_FALLBACK=false.
    """
    served = settings.served_model_name or settings.model
    download = f"weights: download route, {_model_at(settings)} fetched by the engine"
    if not settings.model_cached:
        if settings.model_source == "local":
            return WeightsPlan("local", settings, served, f"weights: local path {settings.model}")
        if os.path.isabs(settings.model):
            engine = _served_as(settings, settings.baked_model_id, release)
            served = engine.served_model_name or settings.model
            return WeightsPlan("baked", engine, served, f"weights: baked in the image at {settings.model}")
        return WeightsPlan("download", settings, served, download)
    root = settings.hf_hub_cache or DEFAULT_HUB_CACHE
    started = clock()
    found = look_up(root, settings.model, settings.model_revision, settings.model_cache_files)
    took = clock() - started
    if found.path is not None:
        local = dataclasses.replace(settings, model=found.path, model_source="local", model_revision=None)
        engine = _served_as(local, settings.model, release)
        detail = f"weights: cached route, {_model_at(settings)} from the model cache at {found.path}"
        served = engine.served_model_name or found.path
        return WeightsPlan("cached", engine, served, detail, lookup_seconds=took)
    if not settings.model_cache_fallback:
        raise CacheUnavailable(
            f"The cached model {_model_at(settings)} cannot be used: {found.missing}. "
            "MODEL_CACHE_FALLBACK=false forbids downloading it instead, so the worker stops. Set the "
            "endpoint's model to this repository and revision (console: Manage > Edit Endpoint > Model) so "
            "RunPod caches it, check MODEL_REVISION and MODEL_CACHE_FILES, or allow the download with "
            "MODEL_CACHE_FALLBACK=true."
        )
    warning = (
        f"warning: the cached model {_model_at(settings)} cannot be used: {found.missing}; downloading it "
        "instead (slower, billed cold start; MODEL_CACHE_FALLBACK=false makes this a startup failure)"
    )
    return WeightsPlan("download", settings, served, download, warning=warning)


def _served_as(engine: Settings, repository: str | None, release: Mapping[str, Any] | None) -> Settings:
    """The engine's settings when it starts on a folder: served as SERVED_MODEL_NAME, else as the
    repository id the folder holds (--served-model-name), unless the release lacks the flag (before 2.2),
    when the engine answers to its path."""
    if engine.served_model_name or not repository:
        return engine
    if release is None:
        release = load_flag_table()["releases"][engine.fastdeploy_version]
    if not spelling("--served-model-name", release):
        return engine
    return dataclasses.replace(engine, served_model_name=repository)


def _model_at(settings: Settings) -> str:
    return f"{settings.model}@{settings.model_revision}" if settings.model_revision else settings.model
