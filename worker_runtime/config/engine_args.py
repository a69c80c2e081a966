"""Pure: settings + one release's flag table -> the engine's argv and environment.

Emits only flags the image's FastDeploy release accepts, in that release's spelling
(e.g. ``--load_choices`` in 2.1-2.2). Standard library only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker_runtime.config.catalog import SETTINGS, Setting, Settings
from worker_runtime.config.release import pinned_flags, spelling

API_SERVER_MODULE = "fastdeploy.entrypoints.openai.api_server"
ENGINE_HOST = "127.0.0.1"
# Engine environment variables the runtime removes from the child's environment.
DROPPED_ENGINE_ENV = ("FD_API_KEY",)
# What of the worker's environment the engine gets (names and prefixes, docs/security.md).
ENVIRONMENT_FILE = Path(__file__).with_name("engine_environment.json")


@dataclass(frozen=True)
class Passed:
    """The variables the engine child gets from the worker's environment."""

    names: frozenset[str]
    prefixes: tuple[str, ...]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self.names or name.startswith(self.prefixes))


def load_passed(path: Path = ENVIRONMENT_FILE) -> Passed:
    with open(path, encoding="utf-8") as f:
        table = json.load(f)
    names = frozenset(n for group in table["names"].values() for n in group)
    prefixes = tuple(p for group in table["prefixes"].values() for p in group)
    return Passed(names, prefixes)


@dataclass(frozen=True)
class EnginePorts:
    http: int
    metrics: int
    engine_worker_queue: int
    cache_queue: int


def _format(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def separate_metrics_listener(release: Mapping[str, Any]) -> bool:
    """Whether the release always opens a metrics listener of its own, on 0.0.0.0.

    ``--metrics-port`` without a default (2.4 and 2.5 in the flag table) means metrics are served on
    ``--port`` unless the flag is given, and giving it opens a second listener on 0.0.0.0
    (docs/upstream-notes.md): such releases get no ``--metrics-port``. Releases whose flag
    has a default (8001 in 2.0-2.3) open that listener anyway: they get a free port, so two workers on one
    host do not collide.
    """
    spec = release["flags"].get("--metrics-port")
    return spec is not None and spec.get("default") is not None


def engine_argv(settings: Settings, release: Mapping[str, Any], ports: EnginePorts, python: str) -> list[str]:
    """The full command line that starts FastDeploy's OpenAI-compatible server."""
    argv = [python, "-m", API_SERVER_MODULE, "--model", settings.model]
    argv += ["--host", ENGINE_HOST, "--port", str(ports.http)]
    for flag, port in (
        ("--metrics-port", ports.metrics),
        ("--engine-worker-queue-port", ports.engine_worker_queue),
        ("--cache-queue-port", ports.cache_queue),
    ):
        if flag == "--metrics-port" and not separate_metrics_listener(release):
            continue  # metrics are served on --port: no second listener (it would bind 0.0.0.0)
        if flag in release["flags"]:
            argv += [flag, str(port)]
    argv += pinned_flags(release)
    for setting in SETTINGS:
        if setting.flag is None or setting.flag == "--model":
            continue
        value = settings.value(setting.env)
        if value is None:
            continue
        name = spelling(setting.flag, release)
        if name is None:
            continue  # only reachable for defaults the release cannot express (checked at load)
        if setting.kind == "bool":
            if value:
                argv.append(name)
                continue
            negative = release["flags"][name].get("negative_form")
            if negative and setting.env_word(value) is None:
                argv.append(negative)  # else false is written to the engine's environment instead
            continue
        argv += [name, _format(value)]
    argv += list(settings.engine_args)
    return argv


def settings_env(settings: Settings, catalogue: tuple[Setting, ...] = SETTINGS) -> dict[str, str]:
    """The engine variables the settings write (each Setting's ``engine_env``, in its words)."""
    out: dict[str, str] = {}
    for setting in catalogue:
        word = setting.env_word(settings.value(setting.env))
        if word is not None and word != "":
            out[str(setting.engine_env)] = word
    return out


def engine_env(
    settings: Settings,
    base: Mapping[str, str],
    log_dir: str,
    path_sep: str = os.pathsep,
    passed: Passed | None = None,
) -> dict[str, str]:
    """The engine child's environment: what it reads of ``base`` (``passed``: FastDeploy's, Paddle's,
    CUDA's and NCCL's variables, paths, proxies, model hub tokens), plus FastDeploy variables, minus our
    own packages. RunPod's variables (its API key among them) and anything else stay with the worker.

    ``FD_API_KEY`` is dropped: the engine is reachable on loopback only and the runtime sends no key.
    """
    passed = passed or load_passed()
    env = {k: v for k, v in base.items() if k in passed and k not in DROPPED_ENGINE_ENV}
    env["FD_LOG_DIR"] = log_dir
    env.update(settings_env(settings))
    if settings.worker_deps_dir and "PYTHONPATH" in env:
        deps = os.path.normpath(settings.worker_deps_dir)
        kept = [p for p in env["PYTHONPATH"].split(path_sep) if p and os.path.normpath(p) != deps]
        if kept:
            env["PYTHONPATH"] = path_sep.join(kept)
        else:
            del env["PYTHONPATH"]
    return env
