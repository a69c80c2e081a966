"""Checks of GPU architectures: every pool holds a GPU type the release's build (and the quantization's
kernels) can run, the types a deploy excludes aside; pip wheel groups (before 2.5) fit the pools."""

from __future__ import annotations

from builder.compat.gpus import representative_archs, select
from builder.variant.checks.context import Context, check


def _runnable_pools(ctx: Context) -> list[str]:
    """Every known pool that would keep a type under the variant's release, install and quantization."""
    eng = ctx.variant.engine
    everything = select(
        ctx.compat, eng.fastdeploy, eng.install, eng.cuda, eng.quantization, list(ctx.compat.pools)
    )
    return sorted(p for p in ctx.compat.pools if everything.kept_in(p))


@check("engine.fastdeploy", "engine.install", "engine.cuda", "engine.quantization", "hub.gpu_ids")
def runnable_types(ctx: Context) -> None:
    """Each pool keeps at least one GPU type the build runs: RunPod refuses an endpoint whose pools,
    minus its excluded types, leave nothing, and a Hub deploy would only crash-loop there."""
    if not ctx.release_ok or ctx.compat.build_release(ctx.release) is None:
        return
    sel = ctx.selection
    for i, pool_id, pool in ctx.pools:
        if sel.kept_in(pool_id):
            continue
        why = "; ".join(f"{e.type.id} ({e.reason})" for e in sel.excluded_in(pool_id))
        negated = [t.id for t in pool.types if t.id in sel.negated]
        if negated:
            why = "; ".join(filter(None, [why, f"{', '.join(negated)} negated in hub.gpu_ids"]))
        newer = ctx.compat.newest_release_for({t.arch for t in pool.types})
        hint = (
            f"FastDeploy {newer} runs some of them"
            if newer and newer != ctx.release and not ctx.variant.engine.quantization
            else "choose another pool"
        )
        ctx.add(
            ("hub", "gpu_ids", i),
            f"holds no GPU type a worker can run: {why}. A deploy excludes the types a worker cannot run "
            f"(gpu.excludedTypes), and here that leaves nothing; {hint}",
            pool_id,
            _runnable_pools(ctx),
            suggest=False,
        )


@check("hub.gpu_ids")
def negated_types(ctx: Context) -> None:
    """A negated '-TYPE' entry names a GPU type of one of the variant's pools (RunPod refuses others)."""
    types = sorted({t.id for _, t in ctx.compat.pool_types(ctx.variant.hub.gpu_ids)})
    for i, entry in enumerate(ctx.variant.hub.gpu_ids):
        if entry.startswith("-") and entry[1:].strip() not in types:
            ctx.add(
                ("hub", "gpu_ids", i),
                "is not a GPU type of the variant's pools (RunPod refuses an excluded type outside them)",
                entry,
                [f"-{t}" for t in types],
            )


@check("tests.gpu_type_id", "engine.fastdeploy", "engine.install", "engine.quantization", "hub.gpu_ids")
def tests_gpu_type(ctx: Context) -> None:
    """tests.gpu_type_id is a GPU type of the variant's pools that the worker can run."""
    wanted = ctx.variant.tests.gpu_type_id
    kept = [t.id for _, t in ctx.selection.kept]
    if wanted is not None and ctx.release_ok and wanted not in kept:
        ctx.add(
            ("tests", "gpu_type_id"),
            "is not a GPU type of the variant's pools that the worker can run (the Hub would test it there)",
            wanted,
            sorted(set(kept)),
        )


@check("engine.fastdeploy", "engine.install", "hub.gpu_ids")
def pip_wheel_group(ctx: Context) -> None:
    """With per-group pip wheels (before 2.5), every pool's representative type falls in one group."""
    build = ctx.compat.build_release(ctx.release)
    if not ctx.release_ok or build is None or build.pip is None or ctx.variant.engine.install != "pip":
        return
    grouped = any(key in ctx.compat.releases_file.pip_wheel_groups for key in build.pip.fastdeploy_index)
    archs = representative_archs(ctx.compat, ctx.variant.hub.gpu_ids)
    if grouped and ctx.pools and ctx.compat.pip_wheel_group(archs) is None:
        groups = "; ".join(
            f"{g}: {'/'.join(a)}" for g, a in ctx.compat.releases_file.pip_wheel_groups.items()
        )
        ctx.add(
            ("hub", "gpu_ids"),
            f"mixes architectures that need different FastDeploy {ctx.release} wheels ({groups})",
            list(ctx.variant.hub.gpu_ids),
            suggest=False,
        )


CHECKS = (runnable_types, negated_types, tests_gpu_type, pip_wheel_group)
