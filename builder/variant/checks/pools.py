"""Checks of the GPU pools: at least one, each a RunPod pool, and as many GPUs as tensor parallel ranks."""

from __future__ import annotations

from builder.variant.checks.context import Context, check


@check("hub.gpu_ids")
def pools_known(ctx: Context) -> None:
    """hub.gpu_ids names at least one pool, each one of gpu_pools.yaml (negated '-ID' entries aside)."""
    known = sorted(ctx.compat.pools)
    if not ctx.variant.hub.gpu_ids:
        ctx.add(("hub", "gpu_ids"), "needs at least one GPU pool", [], known, suggest=False)
    for i, pool_id in enumerate(ctx.variant.hub.gpu_ids):
        if not pool_id.startswith("-") and ctx.compat.pool(pool_id) is None:
            ctx.add(("hub", "gpu_ids", i), "is not a RunPod GPU pool", pool_id, known)


@check("hub.gpu_count", "engine.tensor_parallel_size")
def gpu_count_is_tensor_parallel_size(ctx: Context) -> None:
    """Tensor parallel size = GPUs per worker."""
    hub, eng = ctx.variant.hub, ctx.variant.engine
    if hub.gpu_count is not None and hub.gpu_count != eng.tensor_parallel_size:
        ctx.add(
            ("engine", "tensor_parallel_size"),
            f"must equal hub.gpu_count ({hub.gpu_count}): FastDeploy splits the model across exactly "
            "tensor_parallel_size GPUs",
            eng.tensor_parallel_size,
            [str(hub.gpu_count)],
            suggest=False,
        )


CHECKS = (pools_known, gpu_count_is_tensor_parallel_size)
