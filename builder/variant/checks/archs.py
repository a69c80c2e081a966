"""Checks of GPU architectures: every pool runs the quantization's kernels and is covered by the
release's build (official image, or one pip wheel group)."""

from __future__ import annotations

from collections.abc import Callable

from builder.variant.checks.context import Context, check


def _pools_outside(ctx: Context, archs: list[str], why: Callable[[str], str]) -> None:
    """One error per pool whose GPU architecture is not in ``archs``; allowed: the pools that are."""
    for i, pool_id, pool in ctx.pools:
        if pool.arch not in archs:
            ctx.add(
                ("hub", "gpu_ids", i),
                why(pool.arch),
                pool_id,
                ctx.compat.pools_with_arch(archs),
                suggest=False,
            )


@check("engine.quantization", "hub.gpu_ids")
def quantization_archs(ctx: Context) -> None:
    """Quantizations with architecture-specific kernels (fp8) run on every pool."""
    quantization = ctx.variant.engine.quantization
    need = ctx.compat.archs_for_quantization(quantization)
    if need:
        _pools_outside(
            ctx,
            need,
            lambda arch: f"({arch}) cannot run quantization {quantization}, which needs {'/'.join(need)}",
        )


@check("engine.fastdeploy", "engine.install", "engine.base_image", "hub.gpu_ids")
def image_archs(ctx: Context) -> None:
    """The official image of the release is built for every pool's architecture."""
    eng = ctx.variant.engine
    build = ctx.compat.build_release(ctx.release)
    if not ctx.release_ok or build is None or eng.install != "image" or eng.base_image is not None:
        return
    archs = build.gpu_archs
    newer = ctx.compat.newest_release_for(ctx.pool_archs)
    hint = "use install: pip" + (f" or FastDeploy {newer}" if newer and newer != ctx.release else "")
    _pools_outside(
        ctx,
        archs,
        lambda arch: (
            f"({arch}) is not covered by the FastDeploy {ctx.release} image ({', '.join(archs)}); {hint}"
        ),
    )


@check("engine.fastdeploy", "engine.install", "hub.gpu_ids")
def pip_wheel_group(ctx: Context) -> None:
    """With per-group pip wheels (before 2.5), every pool falls in one group."""
    build = ctx.compat.build_release(ctx.release)
    if not ctx.release_ok or build is None or build.pip is None or ctx.variant.engine.install != "pip":
        return
    grouped = any(key in ctx.compat.releases_file.pip_wheel_groups for key in build.pip.fastdeploy_index)
    if grouped and ctx.pools and ctx.compat.pip_wheel_group(ctx.pool_archs) is None:
        groups = "; ".join(
            f"{g}: {'/'.join(a)}" for g, a in ctx.compat.releases_file.pip_wheel_groups.items()
        )
        ctx.add(
            ("hub", "gpu_ids"),
            f"mixes architectures that need different FastDeploy {ctx.release} wheels ({groups})",
            list(ctx.variant.hub.gpu_ids),
            suggest=False,
        )


CHECKS = (quantization_archs, image_archs, pip_wheel_group)
