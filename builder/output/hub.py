"""RunPod Hub manifests from the runtime's settings and a resolved variant (pure), plus their checks.

hub.json env inputs are exactly the settings the runtime reads and offers (worker_runtime.config.settings
`in_hub`) that the variant's FastDeploy release can take (no input for a flag the release lacks, nor
for a choice whose release list is empty), with the variant's values as defaults; choices come from
the release's lists in engine_flags.json (QUANTIZATION: only methods every pool's GPU can run).

Boolean settings are always `string` inputs with the options "(engine default)" (""), "true" and
"false" — never a `boolean` toggle: a toggle has no "unset" state, so an untouched one would send
its falseValue and override the engine's own default (`--no-enable-prefix-caching`,
`FD_DISABLE_CHUNKED_PREFILL=1`). The default is "" unless the variant sets the value. "false" is
offered only when the release can express it.

`runtime_problems` feeds the image's ENV, every input default and each preset applied on top to the
runtime's own `load_settings` for the image's release: what hub.json offers, the worker accepts.
"""

from __future__ import annotations

import json
import os
from typing import Any

from builder.compat import Compat
from builder.compat.gpus import negated_types
from builder.variant.resolve import Resolved
from builder.variant.settings_spec import (
    BY_ENV,
    FIXED_BY_LISTING,
    bool_false_expressible,
    env_value,
    in_settings_order,
)
from worker_runtime.config.settings import SettingsError, load_settings

HUB_CATEGORIES = ("audio", "embedding", "language", "video", "image")
INPUT_TYPES = ("string", "number", "boolean", "huggingface")
UNSET_OPTION = {"label": "(engine default)", "value": ""}
# config.endpointType per the variant's endpoint.type: the publishing guide documents one value, "LB"
# (docs/upstream-notes.md); a queue listing leaves the field out.
HUB_ENDPOINT_TYPES: dict[str, str | None] = {"queue": None, "load_balancer": "LB"}


def unset_option(setting: Any) -> dict[str, str]:
    """The "leave it unset" option: the engine decides, unless the worker has a default of its own."""
    if setting.default is None or setting.default == "":
        return dict(UNSET_OPTION)
    return {"label": f"(worker default: {env_value(setting, setting.default)})", "value": ""}


def input_label(env: str) -> str:
    words = env.lower().split("_")
    special = {
        "gpu": "GPU",
        "len": "length",
        "seqs": "sequences",
        "kv": "KV",
        "mm": "multimodal",
        "num": "number of",
    }
    text = " ".join(special.get(w, w) for w in words)
    return text[0].upper() + text[1:]


def hub_input(env: str, resolved: Resolved, compat: Compat) -> dict[str, Any]:
    setting = BY_ENV[env]
    value = resolved.settings.get(env, setting.default)
    if value == "" and setting.kind != "args":
        value = None
    advanced = setting.advanced if resolved.advanced is None else env in resolved.advanced
    spec: dict[str, Any] = {"name": input_label(env), "description": setting.description}
    if setting.kind == "bool":
        expressible = bool_false_expressible(setting, compat.engine_release(resolved.release))
        values = ["true", "false"] if expressible else ["true"]
        spec["type"] = "string"
        spec["options"] = [unset_option(setting)] + [{"label": v, "value": v} for v in values]
        spec["default"] = "" if value is None else env_value(setting, bool(value))
    elif setting.kind in ("int", "float"):
        spec["type"] = "number"
        if value is not None:
            spec["default"] = value
        if setting.minimum is not None:
            spec["min"] = int(setting.minimum) if float(setting.minimum).is_integer() else setting.minimum
        if setting.maximum is not None:
            spec["max"] = int(setting.maximum) if float(setting.maximum).is_integer() else setting.maximum
    else:
        spec["type"] = "string"
        if setting.kind == "choice":
            allowed = resolved.offered_choices(compat, env)
            spec["options"] = [unset_option(setting)] + [{"label": v, "value": v} for v in allowed]
        if value is not None:
            spec["default"] = env_value(setting, value)
        elif setting.kind == "choice":
            spec["default"] = ""
    spec["advanced"] = bool(advanced)
    return {"key": env, "input": spec}


def hub_gpu_ids(resolved: Resolved) -> list[str]:
    """The variant's pools, then a '-TYPE' negation for each GPU type the worker cannot run: the Hub's
    `gpuIds` takes "pool IDs with optional GPU ID negations" (RunPod's publishing guide), so a Hub
    deploy excludes the same types as `deploy` does."""
    own = set(negated_types(resolved.gpu_ids))
    return [*resolved.gpu_ids, *(f"-{t}" for t in resolved.excluded_types if t not in own)]


def hub_env_entry(env: str, resolved: Resolved, compat: Compat) -> dict[str, Any]:
    """A static value for a setting the listing fixes, else the user's input."""
    if env in FIXED_BY_LISTING and env in resolved.settings:
        return {"key": env, "value": env_value(BY_ENV[env], resolved.settings[env])}
    return hub_input(env, resolved, compat)


def hub_json(resolved: Resolved, compat: Compat) -> dict[str, Any]:
    config: dict[str, Any] = {"runsOn": "GPU"}
    endpoint_type = HUB_ENDPOINT_TYPES[resolved.endpoint_type]
    if endpoint_type:
        config["endpointType"] = endpoint_type
    config |= {
        "containerDiskInGb": resolved.container_disk_gb,
        "gpuCount": resolved.gpu_count,
        "gpuIds": ",".join(hub_gpu_ids(resolved)),
        "allowedCudaVersions": list(resolved.allowed_cuda_versions),
    }
    if resolved.presets:
        config["presets"] = [
            {"name": p["name"], "defaults": {k: p["defaults"][k] for k in p["defaults"]}}
            for p in resolved.presets
        ]
    config["env"] = [hub_env_entry(env, resolved, compat) for env in in_settings_order(resolved.expose)]
    out: dict[str, Any] = {
        "title": resolved.title,
        "description": resolved.description,
        "type": "serverless",
        "category": resolved.category,
    }
    if resolved.icon_url:
        out["iconUrl"] = resolved.icon_url
    out["config"] = config
    return out


def _input_value(spec: dict[str, Any]) -> str | None:
    if "default" not in spec:
        return None
    value = spec["default"]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def runtime_problems(resolved: Resolved, compat: Compat, hub: dict[str, Any]) -> list[str]:
    """Load the image's settings with the runtime's own `load_settings` for the image's release: the
    Dockerfile ENV, then every hub.json input default, then each preset on top. Problems, one a line."""
    base = {"FASTDEPLOY_VERSION": resolved.release, **resolved.env_strings()}
    entries = hub.get("config", {}).get("env", [])
    with_inputs = dict(base)
    for entry in entries:
        value = entry.get("value") if "value" in entry else _input_value(entry.get("input", {}))
        if value is not None:
            with_inputs[entry["key"]] = value
    cases = [("the image's ENV", base), ("the hub.json input defaults", with_inputs)]
    for preset in resolved.presets:
        env = dict(with_inputs)
        for key, value in preset["defaults"].items():
            env[key] = env_value(BY_ENV[key], value) if key in BY_ENV else str(value)
        cases.append((f"preset {preset['name']!r}", env))
    table = compat.flag_table()
    problems = []
    for what, env in cases:
        try:
            load_settings(env, flag_table=table, volume_dir=os.devnull + "/none")
        except SettingsError as exc:
            problems += [f"{what}: {p}" for p in exc.problems]
    return problems


def tests_json(resolved: Resolved) -> dict[str, Any]:
    env = resolved.env_strings()
    return {
        "tests": [{"name": t["name"], "input": t["input"], "timeout": t["timeout"]} for t in resolved.tests],
        "config": {
            "gpuTypeId": resolved.gpu_type_id,
            "gpuCount": resolved.gpu_count,
            "env": [{"key": k, "value": env[k]} for k in resolved.expose if k in env],
            "allowedCudaVersions": list(resolved.allowed_cuda_versions),
        },
    }


# --- post-render checks (fields from RunPod's Hub publishing guide) ------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_hub_json(text: str, expected_env: list[str]) -> list[str]:
    """Problems in a rendered hub.json (empty list: valid)."""
    problems: list[str] = []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [f"not valid JSON: {exc}"]
    for key in ("title", "description"):
        if not isinstance(data.get(key), str) or not data[key]:
            problems.append(f"{key}: a non-empty string is required")
    if data.get("type") != "serverless":
        problems.append("type: must be 'serverless'")
    if data.get("category") not in HUB_CATEGORIES:
        problems.append(f"category: must be one of {', '.join(HUB_CATEGORIES)}")
    config = data.get("config")
    if not isinstance(config, dict):
        return [*problems, "config: an object is required"]
    if config.get("runsOn") not in ("GPU", "CPU"):
        problems.append("config.runsOn: must be GPU or CPU")
    allowed_types = [v for v in HUB_ENDPOINT_TYPES.values() if v]
    if "endpointType" in config and config["endpointType"] not in allowed_types:
        problems.append(f"config.endpointType: must be {' or '.join(allowed_types)} when present")
    if not _is_int(config.get("containerDiskInGb")):
        problems.append("config.containerDiskInGb: an integer is required")
    if config.get("runsOn") == "GPU":
        if not _is_int(config.get("gpuCount")) or config["gpuCount"] < 1:
            problems.append("config.gpuCount: a positive integer is required")
        if not isinstance(config.get("gpuIds"), str) or not config["gpuIds"]:
            problems.append("config.gpuIds: a comma-separated string is required")
    cudas = config.get("allowedCudaVersions", [])
    if not isinstance(cudas, list) or not all(isinstance(v, str) for v in cudas):
        problems.append("config.allowedCudaVersions: a list of strings is required")
    for i, preset in enumerate(config.get("presets", [])):
        if not isinstance(preset.get("name"), str) or not isinstance(preset.get("defaults"), dict):
            problems.append(f"config.presets[{i}]: name (string) and defaults (object) are required")
    keys = []
    for i, entry in enumerate(config.get("env", [])):
        where = f"config.env[{i}]"
        keys.append(entry.get("key"))
        if "value" in entry:
            if not isinstance(entry["value"], str):
                problems.append(f"{where}.value: a string is required")
            continue
        spec = entry.get("input")
        if not isinstance(spec, dict):
            problems.append(f"{where}: 'value' or 'input' is required")
            continue
        kind = spec.get("type")
        if kind not in INPUT_TYPES:
            problems.append(f"{where}.input.type: must be one of {', '.join(INPUT_TYPES)}")
        default = spec.get("default")
        if default in ("None", "null"):
            problems.append(f"{where}.input.default: {default!r} would reach the engine literally")
        if (
            kind == "number"
            and "default" in spec
            and (isinstance(default, bool) or not isinstance(default, int | float))
        ):
            problems.append(f"{where}.input.default: a number is required")
        if kind == "boolean" and "default" in spec and not isinstance(default, bool):
            problems.append(f"{where}.input.default: a boolean is required")
        if kind == "string" and "default" in spec and not isinstance(default, str):
            problems.append(f"{where}.input.default: a string is required")
        options = spec.get("options")
        if options is not None:
            values = [o.get("value") for o in options]
            if "default" in spec and default not in values:
                problems.append(f"{where}.input.default: {default!r} is not one of the options")
    if keys != expected_env:
        problems.append(f"config.env: keys {keys} differ from the runtime settings offered {expected_env}")
    return problems


def check_tests_json(text: str) -> list[str]:
    problems: list[str] = []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [f"not valid JSON: {exc}"]
    tests = data.get("tests")
    if not isinstance(tests, list):
        problems.append("tests: a list is required")
        tests = []
    for i, test in enumerate(tests):
        if not isinstance(test.get("name"), str):
            problems.append(f"tests[{i}].name: a string is required")
        if not isinstance(test.get("input"), dict):
            problems.append(f"tests[{i}].input: an object is required")
        if not _is_int(test.get("timeout")):
            problems.append(f"tests[{i}].timeout: an integer (milliseconds) is required")
    config = data.get("config", {})
    if not isinstance(config.get("gpuTypeId"), str):
        problems.append("config.gpuTypeId: a string is required")
    if not _is_int(config.get("gpuCount")):
        problems.append("config.gpuCount: an integer is required")
    for i, entry in enumerate(config.get("env", [])):
        if not isinstance(entry.get("key"), str) or not isinstance(entry.get("value"), str):
            problems.append(f"config.env[{i}]: key and value strings are required")
        elif entry["value"] in ("None", "null"):
            problems.append(f"config.env[{i}].value: {entry['value']!r} would reach the engine literally")
    return problems
