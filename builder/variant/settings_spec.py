"""The runtime's settings as the builder sees them: which variant field feeds which variable,
how values are type-checked and written as environment strings."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from typing import Any

from worker_runtime.config.engine_args import DROPPED_ENGINE_ENV as _DROPPED_ENGINE_ENV
from worker_runtime.config.release import spelling
from worker_runtime.config.settings import SETTINGS, Setting

BY_ENV: dict[str, Setting] = {s.env: s for s in SETTINGS}
_ORDER = {env: i for i, env in enumerate(BY_ENV)}

# engine.<field> -> runtime variable
ENGINE_FIELDS: dict[str, str] = {
    "tensor_parallel_size": "TENSOR_PARALLEL_SIZE",
    "max_model_len": "MAX_MODEL_LEN",
    "max_num_seqs": "MAX_NUM_SEQS",
    "gpu_memory_utilization": "GPU_MEMORY_UTILIZATION",
    "quantization": "QUANTIZATION",
    "max_concurrency": "MAX_CONCURRENCY",
    "reasoning_parser": "REASONING_PARSER",
    "tool_call_parser": "TOOL_CALL_PARSER",
    "guided_decoding_backend": "GUIDED_DECODING_BACKEND",
    "load_choices": "LOAD_CHOICES",
    "limit_mm_per_prompt": "LIMIT_MM_PER_PROMPT",
    "extra_args": "ENGINE_ARGS",
    "fastdeploy": "FASTDEPLOY_VERSION",
}
# Variables derived from model.* (never set through engine.settings).
MODEL_FIELDS: dict[str, str] = {
    "MODEL": "model.id",
    "MODEL_REVISION": "model.revision",
    "SERVED_MODEL_NAME": "model.served_name",
    "MODEL_SOURCE": "model.source",
}
# Variables derived from other sections of the variant.
VARIANT_FIELDS: dict[str, str] = {"ENDPOINT_TYPE": "endpoint.type"}
# Settings a Hub listing fixes: hub.json gives a static `value`, never an input, and no preset sets them
# (the Hub deploys one endpoint kind; a worker of the other kind on it would serve nothing).
FIXED_BY_LISTING = ("ENDPOINT_TYPE",)
# Set by the image itself.
IMAGE_FIXED = ("WORKER_DEPS_DIR",)
# Engine environment variables the runtime drops: the runtime's own list, so the builder and the
# image agree (engine.extra_args go through the runtime's check_engine_arg, see validate.py).
DROPPED_ENGINE_ENV = _DROPPED_ENGINE_ENV
API_KEY_MESSAGE = (
    "cannot be used: the runtime talks to the engine without an Authorization header, so every job would "
    "get 401; the engine listens on 127.0.0.1 only, so protect the endpoint with RunPod's API key instead"
)


def in_settings_order(envs: Iterable[str]) -> list[str]:
    """Setting names in the runtime's order (SETTINGS): hub.json inputs, ENV lines, README rows."""
    return sorted(envs, key=_ORDER.__getitem__)


def bounds(env: str) -> dict[str, float]:
    """The runtime's bounds of a numeric setting as pydantic Field arguments (ge/le): one copy of each
    bound, FastDeploy's startup assertions included (MAX_MODEL_LEN >= 16, MAX_NUM_SEQS <= 256)."""
    setting = BY_ENV[env]
    out = {"ge": setting.minimum, "le": setting.maximum}
    return {k: v for k, v in out.items() if v is not None}


def field_for(env: str) -> str | None:
    """Where a variant sets this variable, if it has a dedicated field."""
    for field, name in ENGINE_FIELDS.items():
        if name == env:
            return f"engine.{field}"
    return MODEL_FIELDS.get(env) or VARIANT_FIELDS.get(env)


def check_value(
    setting: Setting, value: Any, choices: list[str] | None = None
) -> tuple[str, list[str]] | None:
    """None when `value` is valid for the setting, else (problem, allowed values)."""
    kind = setting.kind
    if kind == "bool":
        return None if isinstance(value, bool) else ("must be true or false", ["true", "false"])
    if kind in ("int", "float"):
        ok_types = (int,) if kind == "int" else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_types):
            return (f"must be a{'n integer' if kind == 'int' else ' number'}", [])
        if setting.minimum is not None and value < setting.minimum:
            return (f"must be at least {setting.minimum:g}", [])
        if setting.maximum is not None and value > setting.maximum:
            return (f"must be at most {setting.maximum:g}", [])
        return None
    if kind == "choice":
        allowed = list(setting.choices) or list(choices or [])
        if not isinstance(value, str) or value not in allowed:
            return ("is not an allowed value", allowed)
        return None
    if kind == "json":
        return None if isinstance(value, dict) else ("must be a mapping (JSON object)", [])
    if kind == "args":
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return None
        return ("must be a string or a list of strings", [])
    return None if isinstance(value, str) else ("must be a string", [])


def env_value(setting: Setting, value: Any) -> str:
    """The environment string for a typed value (never "None")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if setting.kind == "json" or isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    if setting.kind == "args" and isinstance(value, list):
        return shlex.join(value)
    return str(value)


# --- what a release can take --------------------------------------------------------------------------


def unsupported_reason(setting: Setting, release: dict[str, Any], version: str) -> str | None:
    """Why FastDeploy `version` (its engine_flags.json entry) cannot take any value of the setting,
    or None when it can: its engine flag is missing, or its release list of choices is empty."""
    if setting.choices_from and not release.get(setting.choices_from):
        what = setting.choices_from.replace("_", " ").rstrip("s")
        return f"FastDeploy {version} has no {what} option"
    flagged = setting.flag and setting.flag != "--model" and release.get("flags") is not None
    if flagged and spelling(setting.flag, release) is None:
        return f"FastDeploy {version} has no {setting.flag} flag"
    return None


def offerable_settings(release: dict[str, Any], version: str) -> list[str]:
    """The settings hub.json can offer for a release: the runtime offers them and the release takes them."""
    return [s.env for s in SETTINGS if s.in_hub and unsupported_reason(s, release, version) is None]


def settable_in_settings() -> list[str]:
    """Names `engine.settings` takes: settings without a field of their own, not fixed by the image."""
    dedicated = set(ENGINE_FIELDS.values()) | set(MODEL_FIELDS) | set(VARIANT_FIELDS)
    return sorted(s.env for s in SETTINGS if s.in_hub and s.env not in dedicated and s.env not in IMAGE_FIXED)


def offered_choices(
    setting: Setting, release: dict[str, Any], pool_archs: set[str], quantization_archs: dict[str, list[str]]
) -> list[str]:
    """The values hub.json and presets may offer for a choice setting: the release's list, and for
    QUANTIZATION only the methods whose kernels run on every GPU architecture of the variant's pools."""
    allowed = list(setting.choices) or list(release.get(setting.choices_from or "", []) or [])
    if setting.env == "QUANTIZATION" and pool_archs:
        allowed = [
            q for q in allowed if not quantization_archs.get(q) or pool_archs <= set(quantization_archs[q])
        ]
    return allowed


def bool_false_expressible(setting: Setting, release: dict[str, Any]) -> bool:
    """Whether `false` can reach the engine: a negative flag form, a false default, or an engine env."""
    if setting.env_word(False) is not None or not setting.flag:
        return True
    name = spelling(setting.flag, release)
    if name is None:
        return False
    spec = release["flags"][name]
    return bool(spec.get("negative_form")) or spec.get("default") is False
