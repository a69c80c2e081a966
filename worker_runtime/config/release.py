"""What one FastDeploy release accepts: its flag table, each flag's spelling in it, the options a
setting or the runtime owns, and the one check applied to every ENGINE_ARGS flag.

Shared by ``settings`` (startup errors), ``engine_args`` (argv) and the builder (``engine.extra_args``),
so they cannot disagree. Standard library only.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker_runtime.config.catalog import SETTINGS

FLAGS_FILE = Path(__file__).with_name("engine_flags.json")
# Choice lists whose names FastDeploy normalises ("_" -> "-") before the lookup, on every release.
PARSER_CHOICES = ("reasoning_parsers", "tool_parsers")
# Flags the runtime owns: a user may not move the engine off loopback or onto fixed ports, nor make
# it require an API key the runtime never sends (every job would get 401).
RUNTIME_FLAGS = (
    "--host",
    "--port",
    "--metrics-port",
    "--engine-worker-queue-port",
    "--cache-queue-port",
    "--model",
    "--api-key",
    "--workers",
)
# Engine defaults the runtime relies on, passed on every release whose flag table has the flag, so that
# a release changing the default (release/2.6 changes both) changes nothing. One API-server process: with
# N, each admits 1/N of max_concurrency, and jobs would get 429 well below the limit; the limit stays
# 2.2-2.5's default. Sources: docs/upstream-notes.md. ENGINE_ARGS may still raise --max-concurrency (it
# comes later on the command line); --workers is the runtime's.
PINNED_FLAGS: tuple[tuple[str, str], ...] = (("--workers", "1"), ("--max-concurrency", "512"))


def pinned_flags(release: Mapping[str, Any]) -> list[str]:
    """The PINNED_FLAGS words the release accepts, in its spelling."""
    words: list[str] = []
    for flag, value in PINNED_FLAGS:
        name = spelling(flag, release)
        if name is not None:
            words += [name, value]
    return words


def load_flag_table(path: Path = FLAGS_FILE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def parser_spelling(name: str, choices: tuple[str, ...] | list[str]) -> str | None:
    """The release's spelling of parser ``name``, or None when the release has no such parser.

    FastDeploy looks parser names up with "_" and "-" alike, so ``ernie_x1`` and ``ernie-x1`` are
    the same parser; the release's own spelling is the one emitted.
    """
    key = name.strip().lower().replace("_", "-")
    for choice in choices:
        if choice.lower().replace("_", "-") == key:
            return choice
    return None


def spelling(flag: str, release: Mapping[str, Any]) -> str | None:
    """The release's spelling of ``flag`` (2.5 spelling), or None when the release lacks it."""
    flags = release["flags"]
    if flag in flags:
        return flag
    underscored = "--" + flag[2:].replace("-", "_")
    if underscored in flags:
        return underscored
    for name, spec in flags.items():  # e.g. a 2.5 name that is an alias in the release
        if flag in spec.get("aliases", ()):
            return name
    return None


def accepted_options(release: Mapping[str, Any]) -> set[str]:
    """Every option string the release's parser accepts (names, aliases, negative forms)."""
    out: set[str] = set()
    for name, spec in release["flags"].items():
        out.add(name)
        out.update(spec.get("aliases", ()))
        if spec.get("negative_form"):
            out.add(spec["negative_form"])
    return out


def _underscored(flag: str) -> str:
    return "--" + flag[2:].replace("-", "_")


def owned_options(release: Mapping[str, Any]) -> dict[str, str]:
    """Every option string that sets what a Setting owns -> that setting's variable name.

    Covers the 2.5 name, the release's own spelling, its aliases (``-tp``) and negative form, the
    2.1-2.2 underscore spelling and ``--no-`` forms of boolean flags. ENGINE_ARGS may use none of
    them: the value would reach the engine twice and the runtime would derive e.g. MAX_CONCURRENCY
    from the setting, not from the flag. The one source of truth for the builder's check too.
    """
    out: dict[str, str] = {}
    flags = release["flags"]
    for setting in SETTINGS:
        if setting.flag is None:
            continue
        names = {setting.flag, _underscored(setting.flag)}
        name = spelling(setting.flag, release)
        spec = flags[name] if name is not None else {}
        if name is not None:
            names.add(name)
            names.update(spec.get("aliases", ()))
        if setting.kind == "bool":
            names.update({"--no-" + n[2:] for n in list(names) if n.startswith("--")})
        if spec.get("negative_form"):
            names.add(spec["negative_form"])
        for option in names:
            out.setdefault(option, setting.env)
    return out


@dataclass(frozen=True)
class EngineArgProblem:
    """Why one ENGINE_ARGS option may not be used; the runtime and the builder each render it."""

    kind: str  # "api-key" | "runtime" (the runtime sets it) | "setting" (a Setting owns it) | "unknown"
    option: str
    setting: str | None = None  # "setting": the owner; "unknown": the owner of a close option, if any
    close: tuple[str, ...] = ()  # kind "unknown": accepted options close to it, best first


def close_options(option: str, known: set[str]) -> tuple[str, ...]:
    """Accepted options close to a misspelt ``option``, best first (at most three)."""
    names = sorted(known)
    lowered = {n.lower(): n for n in names}
    out: list[str] = []
    if option.lower() in lowered and lowered[option.lower()] != option:
        out.append(lowered[option.lower()])
    out += difflib.get_close_matches(option, names, n=1, cutoff=0.6)
    key = option.strip("-").replace("_", "-")
    out += [o for o in names if key in o.replace("_", "-")]
    return tuple(dict.fromkeys(o for o in out if o != option))[:3]


def check_engine_arg(option: str, release: Mapping[str, Any]) -> EngineArgProblem | None:
    """The one check for a flag from ENGINE_ARGS (without ``=value``): None when it may be used."""
    if option == "--api-key":
        return EngineArgProblem("api-key", option)
    owner = owned_options(release).get(option)
    if owner is not None:
        return EngineArgProblem("setting", option, setting=owner)
    if option in RUNTIME_FLAGS:
        return EngineArgProblem("runtime", option)
    known = accepted_options(release)
    if option not in known:
        # Suggest only what may be used: a close option that a Setting owns is named by its setting.
        owned = owned_options(release)
        close = close_options(option, known)
        usable = tuple(o for o in close if o not in owned and o not in RUNTIME_FLAGS and o != "--api-key")
        owners = [owned[o] for o in close if o in owned]
        return EngineArgProblem("unknown", option, setting=owners[0] if owners else None, close=usable)
    return None


def engine_args_problem(option: str, release: Mapping[str, Any], version: str) -> str | None:
    """Why ``option`` (a flag from ENGINE_ARGS, without ``=value``) may not be used, or None."""
    problem = check_engine_arg(option, release)
    if problem is None:
        return None
    if problem.kind == "api-key":
        return (
            "ENGINE_ARGS may not set --api-key: the engine listens on 127.0.0.1 only and the runtime "
            "sends no key, so every job would fail with 401 (RunPod authenticates callers)"
        )
    if problem.kind == "setting":
        return f"ENGINE_ARGS may not set {option}: use the {problem.setting} setting instead"
    if problem.kind == "runtime":
        return f"ENGINE_ARGS may not set {option}: the runtime manages it"
    ideas = [*problem.close, *([f"the {problem.setting} setting"] if problem.setting else [])]
    hint = f" (did you mean {', '.join(ideas)}?)" if ideas else ""
    return f"ENGINE_ARGS flag {option} is not accepted by FastDeploy {version}{hint}"


def is_option(word: str) -> bool:
    """Whether an ENGINE_ARGS word is an option: "-1" or "-0.5" are values, not options."""
    return word.startswith("-") and len(word) > 1 and not (word[1].isdigit() or word[1] == ".")


def release_problems(values: Mapping[str, Any], release: Mapping[str, Any], version: str) -> list[str]:
    """Settings set to something the release cannot express, and ENGINE_ARGS flags it does not know."""
    problems: list[str] = []
    flags = release["flags"]
    for setting in SETTINGS:
        value = values.get(setting.env.lower())
        if setting.flag is None or value is None:
            continue
        if setting.env_word(value) is not None:
            continue  # expressed through the engine environment
        name = spelling(setting.flag, release)
        if name is None:
            if value == setting.engine_default:
                continue  # what the engine does without the flag
            problems.append(
                f"{setting.env}={value!r} is not supported by FastDeploy {version}: it has no {setting.flag}"
            )
            continue
        if setting.kind == "bool" and value is False:
            spec = flags[name]
            if not spec.get("negative_form") and spec.get("default") is not False:
                problems.append(
                    f"{setting.env}=false cannot be expressed in FastDeploy {version}"
                    f" ({name} has no negative form)"
                )
    for word in values.get("engine_args") or ():
        if not is_option(word):
            continue
        problem = engine_args_problem(word.split("=", 1)[0], release, version)
        if problem is not None:
            problems.append(problem)
    return problems
