"""Checks of sizes: the model's weights are known, fit the pools' memory under the quantization and the
container disk, and the context length is one the model has (rules: builder.compat)."""

from __future__ import annotations

from builder.variant.checks.context import Context, check

MODEL = ("model.id", "model.weights_gb")


@check(*MODEL)
def weights_known(ctx: Context) -> None:
    """A model missing from models.yaml needs model.weights_gb."""
    if ctx.weights_gb is None:
        ctx.add(
            ("model", "id"),
            "needs model.weights_gb (the size of its weights in GB): with it any model can be served; "
            f"without it only the {len(ctx.compat.models)} models of builder/compat/models.yaml, whose "
            "sizes are known",
            ctx.variant.model.id,
        )


@check(*MODEL, "engine.quantization", "engine.gpu_memory_utilization", "engine.tensor_parallel_size", "hub")
def memory(ctx: Context) -> None:
    """Weights under the quantization (with overhead) fit the smallest memory of the pool's GPU types (those
    a deploy excludes aside) x GPU count x utilization."""
    size, eng, compat = ctx.weights_gb, ctx.variant.engine, ctx.compat
    if size is None or not compat.knows_quantization(eng.quantization):  # the release check reports it
        return
    need = compat.required_memory_gb(size, eng.quantization)
    util = eng.gpu_memory_utilization or compat.default_gpu_memory_utilization
    quantization = eng.quantization or "bf16"
    for i, pool_id, _pool in ctx.pools:
        kept = ctx.selection.kept_in(pool_id)
        if not kept:  # the architecture check reports the pool
            continue
        smallest = min(t.memory_gb for t in kept)  # any of the pool's types may be handed out
        have = smallest * ctx.gpu_count * util
        if need > have:
            ctx.add(
                ("hub", "gpu_ids", i),
                f"cannot hold {ctx.variant.model.id} at {quantization}: needs about {need:.0f} GB "
                f"({size:g} GB weights x {compat.memory_factor(eng.quantization):g} x "
                f"{compat.memory_overhead:g} overhead), {ctx.gpu_count} x {smallest:g} GB (its smallest GPU) "
                f"x {util:g} = {have:.0f} GB; use more GPUs (tensor_parallel_size), a larger pool or a "
                "smaller quantization",
                pool_id,
                suggest=False,
            )


@check(*MODEL, "model.bake", "model.weights", "hub.container_disk_gb")
def disk(ctx: Context) -> None:
    """A container disk the variant sets holds the weights (none when cached) plus the image headroom,
    10% left free."""
    size, disk_gb, mode = ctx.weights_gb, ctx.variant.hub.container_disk_gb, ctx.variant.model.weights_mode
    if size is None or disk_gb is None:
        return
    size = ctx.compat.disk_weights_gb(size, mode)
    needed = ctx.compat.needed_disk_gb(size)
    if disk_gb < needed:
        what = {"baked": "baked weights", "download": "downloaded weights"}.get(
            mode, "cached weights, kept off this disk by RunPod's model cache,"
        )
        ctx.add(
            ("hub", "container_disk_gb"),
            f"is too small for the {what} ({size:g} GB) plus {ctx.compat.headroom_gb:g} GB image "
            f"headroom with {ctx.compat.min_free_disk_fraction:.0%} of the disk left free (the RunPod "
            f"SDK stops a worker below that); needs at least {needed}",
            disk_gb,
            suggest=False,
        )


@check(*MODEL, "engine.max_model_len")
def context_length(ctx: Context) -> None:
    """engine.max_model_len is at most the known model's context length."""
    known = ctx.compat.model(ctx.variant.model.id)
    max_len = ctx.variant.engine.max_model_len
    if ctx.weights_gb is not None and known and max_len and max_len > known.context:
        ctx.add(
            ("engine", "max_model_len"),
            f"exceeds the model's context length ({known.context})",
            max_len,
            suggest=False,
        )


CHECKS = (weights_known, memory, disk, context_length)
