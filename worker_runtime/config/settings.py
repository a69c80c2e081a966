"""Runtime settings: read and validate every environment variable the worker reads.

The variables themselves are in ``catalog`` (re-exported here: ``SETTINGS``, ``Setting``,
``Settings``); what a FastDeploy release accepts is in ``release``. Standard library only.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from typing import Any

from worker_runtime.config.catalog import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_RELEASE,
    SETTINGS,
    SETTINGS_BY_ENV,
    Setting,
    Settings,
    typed_default,
)
from worker_runtime.config.release import (
    FLAGS_FILE,
    PARSER_CHOICES,
    load_flag_table,
    parser_spelling,
    release_problems,
)

__all__ = [
    "FLAGS_FILE",
    "PARSER_CHOICES",
    "SETTINGS",
    "SETTINGS_BY_ENV",
    "Setting",
    "Settings",
    "SettingsError",
    "load_flag_table",
    "load_settings",
    "parser_spelling",
]

VOLUME_DIR = "/runpod-volume"
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
# Words that also mean "unset" for optional choices (a manifest once passed "None" literally).
UNSET_WORDS = ("none", "null")


class SettingsError(ValueError):
    """Every invalid variable at once, one line each, naming the value and what is allowed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"Invalid worker settings ({len(self.problems)}):\n{lines}")


def _allowed(setting: Setting, choices: tuple[str, ...] | list[str]) -> str:
    kind = setting.kind
    if kind == "choice":
        return "one of " + ", ".join(choices) if choices else "nothing in this release (leave it unset)"
    if kind == "bool":
        return "true or false (also 1/0, yes/no, on/off)"
    if kind in ("int", "float"):
        noun = "an integer" if kind == "int" else "a number"
        if setting.minimum is not None and setting.maximum is not None:
            return f"{noun} from {setting.minimum:g} to {setting.maximum:g}"
        if setting.minimum is not None:
            return f"{noun} >= {setting.minimum:g}"
        return noun
    if kind == "json":
        return "a JSON object"
    if kind == "args":
        return "shell words, e.g. --flag value --other-flag"
    return "a string"


def _parse(setting: Setting, raw: str, choices: tuple[str, ...] | list[str]) -> Any:
    """Typed value of ``raw``; raises ValueError with the allowed values on a bad one."""
    kind = setting.kind
    bad = ValueError(f"{setting.env}={raw!r} is invalid: expected {_allowed(setting, choices)}")
    if kind == "str":
        return raw.strip()  # a stray space typed into a web form is not part of a model name
    if kind == "args":
        try:
            return tuple(shlex.split(raw))
        except ValueError as exc:
            raise ValueError(f"{setting.env}={raw!r} is invalid ({exc}): expected shell words") from None
    if kind == "bool":
        word = raw.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise bad
    if kind == "choice":
        word = raw.strip()
        if word in choices:
            return word
        if word.lower() in choices:
            return word.lower()
        if setting.choices_from in PARSER_CHOICES and (name := parser_spelling(word, choices)) is not None:
            return name
        raise bad
    if kind == "json":
        try:
            value = json.loads(raw)
        except ValueError:
            raise bad from None
        if not isinstance(value, dict):
            raise bad
        return value
    if kind in ("int", "float"):
        try:
            number: int | float = int(raw.strip()) if kind == "int" else float(raw.strip())
        except ValueError:
            raise bad from None
        if number != number or number in (float("inf"), float("-inf")):  # NaN or infinite
            raise bad
        if setting.minimum is not None and number < setting.minimum:
            raise bad
        if setting.maximum is not None and number > setting.maximum:
            raise bad
        return number
    raise AssertionError(f"unknown setting kind {kind!r}")


def load_settings(
    environ: Mapping[str, str],
    *,
    flag_table: Mapping[str, Any] | None = None,
    volume_dir: str = VOLUME_DIR,
) -> Settings:
    """Read and validate every setting from ``environ``; one SettingsError lists all problems."""
    table = flag_table if flag_table is not None else load_flag_table()
    releases: Mapping[str, Any] = table["releases"]
    problems: list[str] = []
    values: dict[str, Any] = {}

    version = (environ.get("FASTDEPLOY_VERSION") or "").strip() or DEFAULT_RELEASE
    release = releases.get(version)
    if release is None:
        problems.append(
            f"FASTDEPLOY_VERSION={version!r} is invalid: expected one of {', '.join(sorted(releases))}"
        )
        release = releases[max(releases, key=lambda v: tuple(int(p) for p in v.split(".")))]

    for setting in SETTINGS:
        raw = environ.get(setting.env, "")
        choices: tuple[str, ...] | list[str] = (
            release.get(setting.choices_from, []) if setting.choices_from else setting.choices
        )
        unset = raw.strip() == "" or (setting.kind == "choice" and raw.strip().lower() in UNSET_WORDS)
        if setting.env == "FASTDEPLOY_VERSION":
            values["fastdeploy_version"] = version
            continue
        if unset:
            values[setting.env.lower()] = typed_default(setting)
            continue
        try:
            values[setting.env.lower()] = _parse(setting, raw, choices)
        except ValueError as exc:
            problems.append(str(exc))

    if not values.get("model"):
        problems.append("MODEL is required: a model path inside the image or a repository id")

    # Derived defaults.
    if values.get("max_concurrency") is None:
        values["max_concurrency"] = values.get("max_num_seqs") or DEFAULT_MAX_CONCURRENCY
    if values.get("model_cache_dir") is None and os.path.isdir(volume_dir):
        values["model_cache_dir"] = os.path.join(volume_dir, "fastdeploy")

    path = values.get("health_check_path")
    if isinstance(path, str) and not path.startswith("/"):
        problems.append(f"HEALTH_CHECK_PATH={path!r} is invalid: expected a path starting with /, e.g. /ping")

    # Flags that the chosen release does not have (including ENGINE_ARGS) are startup errors too.
    problems.extend(release_problems(values, release, version))

    if problems:
        raise SettingsError(problems)
    return Settings(**values)
