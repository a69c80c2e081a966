"""Checks of the GPU pools: at least one, each a RunPod pool, and as many GPUs as tensor parallel ranks,
in a number FastDeploy can split the model over."""

from __future__ import annotations

from builder.compat import tensor_parallel_problem
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


@check("engine.tensor_parallel_size", "engine.fastdeploy", "model.id")
def tensor_parallel_splits_the_model(ctx: Context) -> None:
    """A tensor parallel size the release runs (a power of two within its bound) that splits the model's
    heads (models.yaml): otherwise found only when a worker of that many GPUs, billed, fails to start."""
    size = ctx.variant.engine.tensor_parallel_size
    sizes = ctx.compat.tensor_parallel_sizes(ctx.release)
    path = ("engine", "tensor_parallel_size")
    if size not in sizes:
        ctx.add(
            path,
            f"is not a size FastDeploy {ctx.release} splits a model over (powers of two up to {max(sizes)})",
            size,
            [str(n) for n in sizes],
            suggest=False,
        )
        return
    heads = ctx.compat.heads(ctx.variant.model.id)
    problem = tensor_parallel_problem(size, heads)
    if problem:
        fits = [str(n) for n in sizes if not tensor_parallel_problem(n, heads)]
        ctx.add(path, f"cannot split {ctx.variant.model.id}: {problem}", size, fits, suggest=False)


CHECKS = (pools_known, gpu_count_is_tensor_parallel_size, tensor_parallel_splits_the_model)
