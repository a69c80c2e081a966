"""Validation: typed parsing (pydantic errors made readable) and semantic checks against the
compatibility data. Pure: data in, errors out; nothing is written."""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ValidationError

from builder.compat import Compat
from builder.errors import ErrorList
from builder.paths import display
from builder.variant.loader import Loaded
from builder.variant.models import ENV_NAME_PATTERN, Variant
from builder.variant.settings_spec import (
    API_KEY_MESSAGE,
    BY_ENV,
    DROPPED_ENGINE_ENV,
    ENGINE_FIELDS,
    IMAGE_FIXED,
    check_value,
    field_for,
    offered_choices,
    unsupported_reason,
)
from worker_runtime.release import (
    PARSER_CHOICES,
    accepted_options,
    check_engine_arg,
    is_option,
    parser_spelling,
    spelling,
)

_MISSING = object()


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class found at a field path (list indices and dict keys skipped)."""
    cls: Any = Variant
    for part in loc:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return None
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part)
        if field is None:
            return None
        cls = _inner_model(field.annotation)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _lookup(data: Any, loc: tuple) -> tuple[tuple, Any]:
    """Longest prefix of `loc` present in `data`, and the value there."""
    node, kept = data, []
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
        else:
            return tuple(kept), _MISSING if kept != list(loc) else node
        kept.append(part)
    return tuple(kept), node


def parse(loaded: Loaded, errors: ErrorList) -> Variant | None:
    """Typed model from merged data; every schema error added to `errors`."""
    try:
        return Variant.model_validate(loaded.data)
    except ValidationError as exc:
        seen: set[tuple] = set()
        for err in exc.errors():
            loc = tuple(err["loc"])
            kind = err["type"]
            if kind == "missing":
                path = loc
            else:
                path, _ = _lookup(loaded.data, loc)
                if kind == "extra_forbidden":
                    path = loc
            if path in seen:
                continue
            seen.add(path)
            file = loaded.file_for(path)
            value = err.get("input")
            if kind == "extra_forbidden":
                model = _model_at(path[:-1])
                allowed = list(model.model_fields) if model else []
                errors.add(file, path, "is not a known key", path[-1], allowed, show_value=False)
                errors.errors[-1] = _with_key(errors.errors[-1], path[-1])
            elif kind == "missing":
                errors.add(file, path, "is required", show_value=False)
            elif kind == "literal_error":
                allowed = re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", ""))
                errors.add(file, path, "is not allowed", value, allowed)
            else:
                msg = err["msg"]
                msg = msg[len("Value error, ") :] if msg.startswith("Value error, ") else msg
                errors.add(file, path, f"is invalid: {msg}", value, suggest=False)
        return None


def _with_key(error, key):
    # "unknown key 'quantizaton'" reads better than the value of the key.
    return replace(error, message=f"unknown key {key!r}")


# --- semantic checks ------------------------------------------------------------------------------


def required_memory_gb(weights_gb: float, quantization: str | None, compat: Compat) -> float:
    return weights_gb * compat.quantization_factor(quantization) * compat.memory_overhead


def needed_disk_gb(weights_gb: float, compat: Compat) -> int:
    return math.ceil(weights_gb * 1.1 + compat.headroom_gb)


def weights_gb(variant: Variant, compat: Compat) -> float | None:
    if variant.model.weights_gb is not None:
        return variant.model.weights_gb
    known = compat.model(variant.model.id)
    return float(known["weights_gb"]) if known else None


def pip_arch_group(pool_archs: set[str]) -> str | None:
    """The FastDeploy wheel group (pre-2.5 pip indexes) covering every pool, or None."""
    if pool_archs <= {"sm80", "sm90"}:
        return "80_90"
    if pool_archs <= {"sm86", "sm89"}:
        return "86_89"
    return None


def check(variant: Variant, loaded: Loaded, compat: Compat, errors: ErrorList) -> None:
    """Semantic checks; adds every problem to `errors`."""
    f = loaded.file_for
    eng = variant.engine
    rel = eng.fastdeploy

    if loaded.path.parent.is_dir() and variant.name != loaded.path.stem:
        errors.add(
            f(("name",)),
            ("name",),
            f"must match the file name ({loaded.path.stem!r})",
            variant.name,
            [loaded.path.stem],
        )

    # Release, install route, CUDA.
    releases = compat.release_names()
    release_ok = rel in releases and bool(compat.release(rel))
    if not release_ok:
        errors.add(
            f(("engine", "fastdeploy")),
            ("engine", "fastdeploy"),
            "is not a known FastDeploy release",
            rel,
            releases,
        )
    else:
        cudas = compat.cuda_versions(rel, eng.install)
        if not cudas:
            other = "pip" if eng.install == "image" else "image"
            errors.add(
                f(("engine", "install")),
                ("engine", "install"),
                f"has no known install route for FastDeploy {rel}"
                + (f"; use install: {other}" if compat.cuda_versions(rel, other) else ""),
                eng.install,
                [other] if compat.cuda_versions(rel, other) else [],
            )
        elif eng.cuda not in cudas:
            errors.add(
                f(("engine", "cuda")),
                ("engine", "cuda"),
                f"is not offered for FastDeploy {rel} (install: {eng.install})",
                eng.cuda,
                cudas,
            )
        elif eng.install == "pip" and compat.cuda_base(eng.cuda) is None and eng.base_image is None:
            errors.add(
                f(("engine", "cuda")),
                ("engine", "cuda"),
                "has no nvidia/cuda base image in the data",
                eng.cuda,
                list(compat.releases["cuda_bases"]),
            )

    # Release lists: quantization and parsers.
    if release_ok:
        for field, key, what in (
            ("quantization", "quantization", "quantization"),
            ("reasoning_parser", "reasoning_parsers", "reasoning parser"),
            ("tool_call_parser", "tool_parsers", "tool-call parser"),
            ("load_choices", "load_choices", "weight loader"),
        ):
            value = getattr(eng, field)
            if value is None:
                continue
            allowed = compat.release_list(rel, key)
            if key in PARSER_CHOICES and parser_spelling(value, allowed) is not None:
                continue  # "ernie_x1" and "ernie-x1" name the same parser; ENV gets the release's
            if value not in allowed:
                msg = (
                    f"is not valid for FastDeploy {rel}"
                    if allowed
                    else f"cannot be set: FastDeploy {rel} has no {what} option"
                )
                errors.add(f(("engine", field)), ("engine", field), msg, value, allowed)
        _check_release_flags(variant, loaded, compat, errors)
        _check_extra_args(variant, loaded, compat, errors)

    _check_settings(variant, loaded, compat, errors, release_ok)
    _check_env(variant, loaded, errors)
    _check_hub(variant, loaded, compat, errors, release_ok)


def _check_release_flags(variant: Variant, loaded: Loaded, compat: Compat, errors: ErrorList) -> None:
    """A value set for a setting whose engine flag the release does not have."""
    rel = variant.engine.fastdeploy
    release = compat.engine(rel)
    set_fields = {"MODEL_REVISION": variant.model.revision, "SERVED_MODEL_NAME": variant.model.served_name}
    for field, env in ENGINE_FIELDS.items():
        set_fields[env] = getattr(variant.engine, field)
    for env, value in variant.engine.settings.items():
        set_fields[env] = value
    for env, value in set_fields.items():
        setting = BY_ENV.get(env)
        if setting is None or setting.flag is None or value is None or value == [] or setting.engine_env:
            continue
        if spelling(setting.flag, release) is None:
            where = field_for(env) or f"engine.settings.{env}"
            path = tuple(where.split("."))
            errors.add(
                loaded.file_for(path),
                path,
                f"cannot be set: FastDeploy {rel} has no {setting.flag} flag",
                value,
                suggest=False,
            )


def _check_extra_args(variant: Variant, loaded: Loaded, compat: Compat, errors: ErrorList) -> None:
    """Each flag in engine.extra_args through the runtime's own ENGINE_ARGS check."""
    rel = variant.engine.fastdeploy
    release = compat.engine(rel)
    for i, word in enumerate(variant.engine.extra_args):
        path = ("engine", "extra_args", i)
        if not is_option(word):
            continue
        flag = word.split("=", 1)[0]
        problem = check_engine_arg(flag, release)
        if problem is None:
            continue
        file = loaded.file_for(path)
        if problem.kind == "api-key":
            errors.add(file, path, API_KEY_MESSAGE, word, suggest=False)
        elif problem.kind == "runtime":
            errors.add(file, path, "is chosen by the runtime and cannot be passed", word, suggest=False)
        elif problem.kind == "setting":
            env = problem.setting or ""
            where = field_for(env) or f"engine.settings.{env}"
            errors.add(file, path, f"is a runtime setting: set {where} instead", word, suggest=False)
        else:
            allowed = sorted(accepted_options(release))
            errors.add(file, path, f"is not a flag of FastDeploy {rel}", flag, allowed, suggest=False)
            if problem.close:
                errors.errors[-1] = replace(errors.errors[-1], suggestion=problem.close[0])


def _check_settings(
    variant: Variant, loaded: Loaded, compat: Compat, errors: ErrorList, release_ok: bool
) -> None:
    for env, value in variant.engine.settings.items():
        path = ("engine", "settings", env)
        file = loaded.file_for(path)
        setting = BY_ENV.get(env)
        if setting is None:
            errors.add(file, path, "is not a runtime setting", env, sorted(BY_ENV), show_value=False)
            errors.errors[-1] = _with_key(errors.errors[-1], env)
            continue
        dedicated = field_for(env)
        if dedicated is not None:
            errors.add(file, path, f"has its own field: set {dedicated} instead", value, suggest=False)
            continue
        if env in IMAGE_FIXED or (not setting.in_hub and env not in ENGINE_FIELDS.values()):
            errors.add(file, path, "is fixed by the image", value, suggest=False)
            continue
        choices = (
            compat.release_list(variant.engine.fastdeploy, setting.choices_from)
            if (release_ok and setting.choices_from)
            else None
        )
        problem = check_value(setting, value, choices)
        if problem:
            errors.add(file, path, problem[0], value, problem[1])


def _check_env(variant: Variant, loaded: Loaded, errors: ErrorList) -> None:
    for key in variant.engine.env:
        path = ("engine", "env", key)
        file = loaded.file_for(path)
        if not re.match(ENV_NAME_PATTERN, key):
            errors.add(
                file,
                path,
                "is not a valid environment variable name (letters, digits, _)",
                key,
                suggest=False,
            )
        elif key in BY_ENV:
            where = field_for(key) or f"engine.settings.{key}"
            errors.add(file, path, f"is a runtime setting: set {where} instead", key, suggest=False)
        elif key in ("PYTHONPATH",):
            errors.add(file, path, "is fixed by the image", key, suggest=False)
        elif key in DROPPED_ENGINE_ENV:
            errors.add(file, path, API_KEY_MESSAGE, key, suggest=False)


def hub_settings(variant: Variant, compat: Compat) -> list[str]:
    """The settings hub.json offers: hub.expose, or every setting the release can take."""
    if variant.hub.expose is not None:
        return list(variant.hub.expose)
    rel = variant.engine.fastdeploy
    release = compat.engine(rel)
    return [s.env for s in BY_ENV.values() if s.in_hub and unsupported_reason(s, release, rel) is None]


def _check_hub(variant: Variant, loaded: Loaded, compat: Compat, errors: ErrorList, release_ok: bool) -> None:
    hub, eng = variant.hub, variant.engine
    f = loaded.file_for
    offerable = [s.env for s in BY_ENV.values() if s.in_hub]

    pools = []
    if not hub.gpu_ids:
        errors.add(
            f(("hub", "gpu_ids")),
            ("hub", "gpu_ids"),
            "needs at least one GPU pool",
            [],
            sorted(compat.pools),
            suggest=False,
        )
    for i, pool_id in enumerate(hub.gpu_ids):
        if pool_id.startswith("-"):
            continue
        pool = compat.pool(pool_id)
        if pool is None:
            errors.add(
                f(("hub", "gpu_ids")),
                ("hub", "gpu_ids", i),
                "is not a RunPod GPU pool",
                pool_id,
                sorted(compat.pools),
            )
        else:
            pools.append((i, pool_id, pool))

    # Tensor parallel size = GPUs per worker.
    count = hub.gpu_count if hub.gpu_count is not None else eng.tensor_parallel_size
    if hub.gpu_count is not None and hub.gpu_count != eng.tensor_parallel_size:
        errors.add(
            f(("engine", "tensor_parallel_size")),
            ("engine", "tensor_parallel_size"),
            f"must equal hub.gpu_count ({hub.gpu_count}): FastDeploy splits the model across exactly "
            "tensor_parallel_size GPUs",
            eng.tensor_parallel_size,
            [str(hub.gpu_count)],
            suggest=False,
        )

    # Memory: weights under the quantization vs pool memory x count x utilization.
    size = weights_gb(variant, compat)
    if size is None:
        errors.add(
            f(("model", "id")),
            ("model", "id"),
            "is not in builder/compat/models.yaml: set model.weights_gb",
            variant.model.id,
            sorted(compat.models),
        )
    else:
        need = required_memory_gb(size, eng.quantization, compat)
        util = eng.gpu_memory_utilization or compat.default_gpu_memory_utilization
        for i, pool_id, pool in pools:
            have = pool["memory_gb"] * count * util
            if need > have:
                q = eng.quantization or "bf16"
                errors.add(
                    f(("hub", "gpu_ids")),
                    ("hub", "gpu_ids", i),
                    f"cannot hold {variant.model.id} at {q}: needs about {need:.0f} GB "
                    f"({size:g} GB weights x {compat.quantization_factor(eng.quantization):g} x "
                    f"{compat.memory_overhead:g} overhead), {count} x {pool['memory_gb']} GB x {util:g} "
                    f"= {have:.0f} GB; use more GPUs (tensor_parallel_size), a larger pool or a "
                    "smaller quantization",
                    pool_id,
                    suggest=False,
                )
        needed_disk = needed_disk_gb(size, compat)
        if hub.container_disk_gb is not None and hub.container_disk_gb < needed_disk:
            what = "baked weights" if variant.model.bake else "downloaded weights"
            errors.add(
                f(("hub", "container_disk_gb")),
                ("hub", "container_disk_gb"),
                f"is too small for the {what} ({size:g} GB) plus {compat.headroom_gb:g} GB image "
                f"headroom; needs at least {needed_disk}",
                hub.container_disk_gb,
                suggest=False,
            )
        known = compat.model(variant.model.id) or {}
        if eng.max_model_len and known.get("context") and eng.max_model_len > known["context"]:
            errors.add(
                f(("engine", "max_model_len")),
                ("engine", "max_model_len"),
                f"exceeds the model's context length ({known['context']})",
                eng.max_model_len,
                suggest=False,
            )

    # Architectures: quantization kernels and the release's builds.
    def pools_outside(archs: list[str], why: Callable[[str], str]) -> None:
        """One error per pool whose GPU architecture is not in ``archs``; allowed: the pools that are."""
        for i, pool_id, pool in pools:
            if pool["arch"] not in archs:
                errors.add(
                    f(("hub", "gpu_ids")),
                    ("hub", "gpu_ids", i),
                    why(pool["arch"]),
                    pool_id,
                    sorted(p for p, d in compat.pools.items() if d["arch"] in archs),
                    suggest=False,
                )

    need_archs = compat.quantization_archs(eng.quantization)
    if need_archs:
        pools_outside(
            need_archs,
            lambda arch: (
                f"({arch}) cannot run quantization {eng.quantization}, which needs {'/'.join(need_archs)}"
            ),
        )
    if release_ok and eng.install == "image" and eng.base_image is None:
        archs = compat.release(eng.fastdeploy).get("gpu_archs", [])
        pools_outside(
            archs,
            lambda arch: (
                f"({arch}) is not covered by the FastDeploy {eng.fastdeploy} image "
                f"({', '.join(archs)}); use install: pip or FastDeploy 2.5.0"
            ),
        )
    if release_ok and eng.install == "pip":
        index = (compat.release(eng.fastdeploy).get("pip") or {}).get("fastdeploy_index") or {}
        groups = ("80_90" in index or "86_89" in index) and pools
        if groups and pip_arch_group({p["arch"] for _, _, p in pools}) is None:
            errors.add(
                f(("hub", "gpu_ids")),
                ("hub", "gpu_ids"),
                f"mixes architectures that need different FastDeploy {eng.fastdeploy} wheels "
                "(sm80/sm90 vs sm86/sm89)",
                list(hub.gpu_ids),
                suggest=False,
            )

    # Exposed and advanced settings, presets.
    for key in ("expose", "advanced"):
        for i, env in enumerate(getattr(hub, key) or []):
            if env not in offerable:
                errors.add(
                    f(("hub", key)), ("hub", key, i), "is not a setting users can change", env, offerable
                )
            elif key == "expose" and release_ok:
                reason = unsupported_reason(BY_ENV[env], compat.engine(eng.fastdeploy), eng.fastdeploy)
                if reason:
                    errors.add(
                        f(("hub", key)), ("hub", key, i), f"cannot be offered: {reason}", env, suggest=False
                    )
    exposed = hub_settings(variant, compat)
    pool_archs = {pool["arch"] for _, _, pool in pools}
    for i, preset in enumerate(hub.presets):
        for env, value in preset.defaults.items():
            path = ("hub", "presets", i, "defaults", env)
            if env not in exposed:
                errors.add(
                    f(path), path, "is not a setting offered in hub.json", env, exposed, show_value=False
                )
                errors.errors[-1] = _with_key(errors.errors[-1], env)
                continue
            setting = BY_ENV[env]
            choices = (
                offered_choices(
                    setting, compat.engine(eng.fastdeploy), pool_archs, compat.quantization_arch_table()
                )
                if (release_ok and setting.kind == "choice")
                else None
            )
            problem = check_value(setting, value, choices)
            if problem:
                errors.add(f(path), path, problem[0], value, problem[1])
    if variant.model.bake and variant.model.source == "local":
        errors.add(
            f(("model", "bake")),
            ("model", "bake"),
            "cannot bake a local path: set bake: false (the path is read when the worker starts)",
            True,
            suggest=False,
        )


__all__ = ["check", "display", "hub_settings", "parse"]
