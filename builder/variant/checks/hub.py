"""Checks of what hub.json and tests.json offer: exposed and advanced settings, the presets' values, and
at least one test job."""

from __future__ import annotations

from dataclasses import replace

from builder.variant.checks.context import Context, check
from builder.variant.settings_spec import (
    BY_ENV,
    FIXED_BY_LISTING,
    check_value,
    field_for,
    offerable_settings,
    offered_choices,
    unsupported_reason,
)


def hub_settings(ctx: Context) -> list[str]:
    """The settings hub.json offers: hub.expose, or every setting the release can take."""
    if ctx.variant.hub.expose is not None:
        return list(ctx.variant.hub.expose)
    return offerable_settings(ctx.engine_release, ctx.release)


@check("hub.expose", "hub.advanced", "engine.fastdeploy")
def exposed_settings(ctx: Context) -> None:
    """hub.expose and hub.advanced name settings users can change (expose: ones the release takes)."""
    in_hub = [s.env for s in BY_ENV.values() if s.in_hub]
    offerable = offerable_settings(ctx.engine_release, ctx.release) if ctx.release_ok else in_hub
    for key, allowed in (("expose", offerable), ("advanced", in_hub)):
        for i, env in enumerate(getattr(ctx.variant.hub, key) or []):
            path = ("hub", key, i)
            if env not in in_hub:
                ctx.add(path, "is not a setting users can change", env, allowed)
            elif key == "expose" and ctx.release_ok:
                reason = unsupported_reason(BY_ENV[env], ctx.engine_release, ctx.release)
                if reason:
                    ctx.add(path, f"cannot be offered: {reason}", env, suggest=False)


@check("hub.presets", "hub.expose", "hub.gpu_ids", "engine.fastdeploy")
def presets(ctx: Context) -> None:
    """Each preset sets offered settings to values the release (and every pool) accepts."""
    exposed = hub_settings(ctx)
    for i, preset in enumerate(ctx.variant.hub.presets):
        for env, value in preset.defaults.items():
            path = ("hub", "presets", i, "defaults", env)
            if env not in exposed:
                ctx.add(path, "is not a setting offered in hub.json", env, exposed, show_value=False)
                ctx.errors.errors[-1] = replace(ctx.errors.errors[-1], message=f"unknown key {env!r}")
                continue
            if env in FIXED_BY_LISTING:
                ctx.add(path, f"is fixed by the listing: set {field_for(env)} instead", value, suggest=False)
                continue
            setting = BY_ENV[env]
            choices = (
                offered_choices(setting, ctx.engine_release, ctx.pool_archs, ctx.compat.quantization_archs)
                if (ctx.release_ok and setting.kind == "choice")
                else None
            )
            problem = check_value(setting, value, choices)
            if problem:
                ctx.add(path, problem[0], value, problem[1])


@check("tests")
def publishes_test_jobs(ctx: Context) -> None:
    """tests.json has a job: with none, the Hub and `build.py test` have nothing to run (found only after
    a build and a GPU worker's start)."""
    if not ctx.variant.tests.jobs:
        ctx.add(
            ("tests", "jobs"),
            "is empty: the Hub and `build.py test` would have no job to run; add tests.jobs, or extend "
            "_base (`extends: _base`), whose jobs suit any chat model",
            [],
            suggest=False,
            show_value=False,
        )


CHECKS = (exposed_settings, presets, publishes_test_jobs)
