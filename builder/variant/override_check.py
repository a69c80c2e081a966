"""A variant with deploy-time overrides (`--env KEY=VALUE`) applied, checked by the same pipeline as a
variant file: an override that breaks the variant's consistency (tensor parallel size against the GPU
count the endpoint gets, quantization against pool memory, values the release accepts, ...) is refused
like the same value written in the file, and the error names the `--env` flag instead of the file."""

from __future__ import annotations

import copy
import shlex
from collections.abc import Mapping
from typing import Any

import yaml

from builder.compat import Compat
from builder.errors import ErrorList, VariantError
from builder.variant.checks import run_checks
from builder.variant.loader import Loaded
from builder.variant.parse import parse
from builder.variant.pipeline import Prepared
from builder.variant.settings_spec import BY_ENV, field_for


def _value(env: str, text: str) -> Any:
    """An `--env` string as the variant file would hold it (YAML scalars: 2, 0.5, true, wint4)."""
    if env == "ENGINE_ARGS":
        return shlex.split(text)
    if env.startswith(("MODEL", "SERVED_")):
        return text
    try:
        return yaml.safe_load(text) if text else text
    except yaml.YAMLError:
        return text


def apply_overrides(loaded: Loaded, env: Mapping[str, str], gpu_count: int) -> Loaded:
    """`loaded` with each runtime setting of `env` set where a variant file sets it; the GPU count stays
    the image's (the endpoint gets `gpu_count` GPUs whatever the overrides say). Pure."""
    data = copy.deepcopy(loaded.data)
    origins = dict(loaded.origins)
    data.setdefault("hub", {})["gpu_count"] = gpu_count
    for key, text in env.items():
        if key not in BY_ENV:
            continue  # passed through to the engine's libraries (HF_TOKEN, FD_*): nothing to check here
        where = field_for(key)
        path = tuple(where.split(".")) if where else ("engine", "settings", key)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _value(key, text)
        origins[path] = f"--env {key}={text}"
    return Loaded(path=loaded.path, data=data, origins=origins, chain=loaded.chain)


def override_errors(prepared: Prepared, env: Mapping[str, str], compat: Compat) -> list[VariantError]:
    """Every problem of the variant with `env` applied, as the variant file's checks report it."""
    if not env:
        return []
    loaded = apply_overrides(prepared.loaded, env, prepared.resolved.gpu_count)
    errors = ErrorList()
    parsed = parse(loaded, errors)
    if parsed.variant is not None:
        run_checks(parsed.variant, loaded, compat, errors, parsed.dropped)
    return errors.errors
