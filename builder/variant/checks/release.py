"""Checks against the FastDeploy release: it exists and is published for the install route and CUDA
version; quantization, parsers and loader are in its lists; every set value has its flag in the release;
every flag of engine.extra_args passes the runtime's own ENGINE_ARGS check."""

from __future__ import annotations

from dataclasses import replace

from builder.variant.checks.context import Context, check
from builder.variant.settings_spec import API_KEY_MESSAGE, BY_ENV, ENGINE_FIELDS, field_for
from worker_runtime.config.release import (
    PARSER_CHOICES,
    accepted_options,
    check_engine_arg,
    is_option,
    parser_spelling,
    spelling,
)

# engine.<field>, its list in the flag table, what the message calls it
RELEASE_LISTS = (
    ("quantization", "quantization", "quantization"),
    ("reasoning_parser", "reasoning_parsers", "reasoning parser"),
    ("tool_call_parser", "tool_parsers", "tool-call parser"),
    ("load_choices", "load_choices", "weight loader"),
)


@check("engine.fastdeploy", "engine.install", "engine.cuda", "engine.base_image")
def release_route(ctx: Context) -> None:
    """The release is known, has the install route, and is published for the CUDA version."""
    eng, compat = ctx.variant.engine, ctx.compat
    if compat.unpublished(ctx.release):
        ctx.add(
            ("engine", "fastdeploy"),
            f"is not published yet: FastDeploy {ctx.release} is read from its release branch (flags, "
            "defaults) for testing, and has no image or wheel to build on; pick a published release",
            ctx.release,
            compat.release_names(),
            suggest=False,
        )
        return
    if not ctx.release_ok:
        ctx.add(
            ("engine", "fastdeploy"), "is not a known FastDeploy release", ctx.release, compat.release_names()
        )
        return
    cudas = compat.cuda_versions(ctx.release, eng.install)
    if not cudas:
        other = "pip" if eng.install == "image" else "image"
        has_other = bool(compat.cuda_versions(ctx.release, other))
        ctx.add(
            ("engine", "install"),
            f"has no known install route for FastDeploy {ctx.release}"
            + (f"; use install: {other}" if has_other else ""),
            eng.install,
            [other] if has_other else [],
        )
        return
    needs_base = eng.install == "pip" and eng.base_image is None
    usable = [c for c in cudas if compat.cuda_base_image(c)] if needs_base else cudas
    if eng.cuda not in cudas:
        ctx.add(
            ("engine", "cuda"),
            f"is not offered for FastDeploy {ctx.release} (install: {eng.install})",
            eng.cuda,
            usable,
        )
    elif eng.cuda not in usable:
        ctx.add(("engine", "cuda"), "has no nvidia/cuda base image in the data", eng.cuda, usable)


@check(
    "engine.fastdeploy",
    "engine.quantization",
    "engine.reasoning_parser",
    "engine.tool_call_parser",
    "engine.load_choices",
)
def release_lists(ctx: Context) -> None:
    """Quantization, parsers and weight loader are values the release lists."""
    if not ctx.release_ok:
        return
    for field, key, what in RELEASE_LISTS:
        value = getattr(ctx.variant.engine, field)
        if value is None:
            continue
        allowed = ctx.compat.engine_choices(ctx.release, key)
        if key in PARSER_CHOICES and parser_spelling(value, allowed) is not None:
            continue  # "ernie_x1" and "ernie-x1" name the same parser; ENV gets the release's
        if value not in allowed:
            msg = (
                f"is not valid for FastDeploy {ctx.release}"
                if allowed
                else f"cannot be set: FastDeploy {ctx.release} has no {what} option"
            )
            ctx.add(("engine", field), msg, value, allowed)


@check("engine", "model.revision", "model.served_name")
def release_flags(ctx: Context) -> None:
    """A value set for a setting whose engine flag the release does not have."""
    if not ctx.release_ok:
        return
    variant = ctx.variant
    set_fields = {"MODEL_REVISION": variant.model.revision, "SERVED_MODEL_NAME": variant.model.served_name}
    for field, env in ENGINE_FIELDS.items():
        set_fields[env] = getattr(variant.engine, field)
    set_fields.update(variant.engine.settings)
    for env, value in set_fields.items():
        setting = BY_ENV.get(env)
        if setting is None or setting.flag is None or value is None or value == []:
            continue
        if setting.env_word(value) is not None or value == setting.engine_default:
            continue  # written to the engine's environment, or what the engine does without the flag
        if spelling(setting.flag, ctx.engine_release) is None:
            where = field_for(env) or f"engine.settings.{env}"
            ctx.add(
                tuple(where.split(".")),
                f"cannot be set: FastDeploy {ctx.release} has no {setting.flag} flag",
                value,
                suggest=False,
            )


@check("engine.fastdeploy", "engine.extra_args")
def extra_args(ctx: Context) -> None:
    """Each flag in engine.extra_args through the runtime's own ENGINE_ARGS check."""
    if not ctx.release_ok:
        return
    release = ctx.engine_release
    for i, word in enumerate(ctx.variant.engine.extra_args):
        path = ("engine", "extra_args", i)
        if not is_option(word):
            continue
        flag = word.split("=", 1)[0]
        problem = check_engine_arg(flag, release)
        if problem is None:
            continue
        if problem.kind == "api-key":
            ctx.add(path, API_KEY_MESSAGE, word, suggest=False)
        elif problem.kind == "runtime":
            ctx.add(path, "is chosen by the runtime and cannot be passed", word, suggest=False)
        elif problem.kind == "setting":
            where = field_for(problem.setting or "") or f"engine.settings.{problem.setting}"
            ctx.add(path, f"is a runtime setting: set {where} instead", word, suggest=False)
        else:
            usable = sorted(o for o in accepted_options(release) if check_engine_arg(o, release) is None)
            ctx.add(path, f"is not a flag of FastDeploy {ctx.release}", flag, usable, suggest=False)
            idea = problem.close[0] if problem.close else None
            if idea is None and problem.setting:
                idea = field_for(problem.setting) or f"engine.settings.{problem.setting}"
            if idea:
                ctx.errors.errors[-1] = replace(ctx.errors.errors[-1], suggestion=idea)


NUMERIC_FIELDS = {f: env for f, env in ENGINE_FIELDS.items() if BY_ENV[env].kind in ("int", "float")}


@check("engine.fastdeploy", "engine.settings", *(f"engine.{f}" for f in NUMERIC_FIELDS))
def release_bounds(ctx: Context) -> None:
    """Numeric values within the bounds the release asserts at startup beyond the runtime's own."""
    build = ctx.compat.build_release(ctx.release) if ctx.release_ok else None
    if build is None or not build.startup_bounds:
        return
    values = [(("engine", f), env, getattr(ctx.variant.engine, f)) for f, env in NUMERIC_FIELDS.items()]
    values += [(("engine", "settings", env), env, v) for env, v in ctx.variant.engine.settings.items()]
    for path, env, value in values:
        bound = build.startup_bounds.get(env)
        if bound is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if bound.minimum is not None and value < bound.minimum:
            problem = f"must be at least {bound.minimum:g}"
        elif bound.maximum is not None and value > bound.maximum:
            problem = f"must be at most {bound.maximum:g}"
        else:
            continue
        ctx.add(path, f"{problem}: FastDeploy {ctx.release} asserts it at startup", value, suggest=False)


CHECKS = (release_route, release_lists, release_flags, extra_args, release_bounds)
