"""RunPod Hub manifests from the runtime's settings and a resolved variant (pure), plus their checks.

hub.json env inputs are exactly the settings the runtime reads and offers (worker_runtime.settings
`in_hub`), with the variant's values as defaults; choices come from the release's lists in
engine_flags.json.
"""

from __future__ import annotations

import json
from typing import Any

from .compat import Compat
from .resolve import Resolved
from .settings_spec import BY_ENV, env_value

HUB_CATEGORIES = ("audio", "embedding", "language", "video", "image")
INPUT_TYPES = ("string", "number", "boolean", "huggingface")
UNSET_OPTION = {"label": "(engine default)", "value": ""}


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
        spec.update(type="boolean", trueValue="true", falseValue="false")
        if value is not None:
            spec["default"] = bool(value)
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
            allowed = list(setting.choices) or resolved.choices(compat, setting.choices_from or "")
            spec["options"] = [dict(UNSET_OPTION)] + [{"label": v, "value": v} for v in allowed]
        if value is not None:
            spec["default"] = env_value(setting, value)
        elif setting.kind == "choice":
            spec["default"] = ""
    spec["advanced"] = bool(advanced)
    return {"key": env, "input": spec}


def hub_json(resolved: Resolved, compat: Compat) -> dict[str, Any]:
    config: dict[str, Any] = {
        "runsOn": "GPU",
        "containerDiskInGb": resolved.container_disk_gb,
        "gpuCount": resolved.gpu_count,
        "gpuIds": ",".join(resolved.gpu_ids),
        "allowedCudaVersions": list(resolved.allowed_cuda_versions),
    }
    if resolved.presets:
        config["presets"] = [
            {"name": p["name"], "defaults": {k: p["defaults"][k] for k in p["defaults"]}}
            for p in resolved.presets
        ]
    order = [s.env for s in BY_ENV.values()]
    config["env"] = [hub_input(env, resolved, compat) for env in sorted(resolved.expose, key=order.index)]
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
