"""Checks of engine.settings (runtime settings without a field of their own) and engine.env."""

from __future__ import annotations

import re
from dataclasses import replace

from builder.variant.checks.context import Context, check
from builder.variant.models import ENV_NAME_PATTERN
from builder.variant.settings_spec import (
    API_KEY_MESSAGE,
    BY_ENV,
    DROPPED_ENGINE_ENV,
    ENGINE_FIELDS,
    IMAGE_FIXED,
    check_value,
    field_for,
    settable_in_settings,
)


@check("engine.settings", "engine.fastdeploy")
def settings_values(ctx: Context) -> None:
    """Each engine.settings key is a setting set there (not a field, not fixed) with a valid value."""
    for env, value in ctx.variant.engine.settings.items():
        path = ("engine", "settings", env)
        setting = BY_ENV.get(env)
        if setting is None:
            ctx.add(path, "is not a runtime setting", env, settable_in_settings(), show_value=False)
            ctx.errors.errors[-1] = replace(ctx.errors.errors[-1], message=f"unknown key {env!r}")
            continue
        dedicated = field_for(env)
        if dedicated is not None:
            ctx.add(path, f"has its own field: set {dedicated} instead", value, suggest=False)
            continue
        if env in IMAGE_FIXED or (not setting.in_hub and env not in ENGINE_FIELDS.values()):
            ctx.add(path, "is fixed by the image", value, suggest=False)
            continue
        choices = (
            ctx.compat.engine_choices(ctx.release, setting.choices_from)
            if (ctx.release_ok and setting.choices_from)
            else None
        )
        problem = check_value(setting, value, choices)
        if problem:
            ctx.add(path, problem[0], value, problem[1])


@check("engine.env")
def engine_env(ctx: Context) -> None:
    """engine.env names are variable names, none a runtime setting, PYTHONPATH or the API key."""
    for key in ctx.variant.engine.env:
        path = ("engine", "env", key)
        if not re.match(ENV_NAME_PATTERN, key):
            ctx.add(path, "is not a valid environment variable name (letters, digits, _)", key, suggest=False)
        elif key in BY_ENV:
            where = field_for(key) or f"engine.settings.{key}"
            ctx.add(path, f"is a runtime setting: set {where} instead", key, suggest=False)
        elif key in ("PYTHONPATH",):
            ctx.add(path, "is fixed by the image", key, suggest=False)
        elif key in DROPPED_ENGINE_ENV:
            ctx.add(path, API_KEY_MESSAGE, key, suggest=False)


CHECKS = (settings_values, engine_env)
