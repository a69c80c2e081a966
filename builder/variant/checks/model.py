"""Checks of the variant as a file and of its model source."""

from __future__ import annotations

from fnmatch import fnmatch

from builder.variant.checks.context import Context, check
from worker_runtime.release import spelling


@check("name")
def name_matches_file(ctx: Context) -> None:
    """A variant's name is its file name (the build directory and tag come from it)."""
    stem = ctx.loaded.path.stem
    if ctx.loaded.path.parent.is_dir() and ctx.variant.name != stem:
        ctx.add(("name",), f"must match the file name ({stem!r})", ctx.variant.name, [stem])


@check("model.id", "model.allow_patterns")
def download_keeps_what_fastdeploy_reads(ctx: Context) -> None:
    """model.allow_patterns let through every file FastDeploy reads from the model folder."""
    patterns = ctx.variant.model.allow_patterns
    if not patterns:
        return  # every file is downloaded
    left_out = [
        name
        for name in ctx.compat.model_files(ctx.variant.model.id)
        if not any(fnmatch(name, p) for p in patterns)
    ]
    if left_out:
        ctx.add(
            ("model", "allow_patterns"),
            f"leave out {', '.join(left_out)}, which FastDeploy reads from the model folder; add patterns "
            "for them (e.g. '*.jinja' for chat_template.jinja)",
            list(patterns),
            suggest=False,
        )


@check("model.bake", "model.source")
def bake_needs_a_download(ctx: Context) -> None:
    """Baked weights are downloaded at build time: a local path cannot be."""
    if ctx.variant.model.bake and ctx.variant.model.source == "local":
        ctx.add(
            ("model", "bake"),
            "cannot bake a local path: set bake: false (the path is read when the worker starts)",
            True,
            suggest=False,
        )


@check("model.id", "engine.load_choices", "engine.fastdeploy")
def loader_reads_the_weights_format(ctx: Context) -> None:
    """A checkpoint format that needs one loader (Torch weights: default_v1) gets it: set in the variant,
    or the release's default of --load-choices (default_v1 from 2.3, so nothing to set there)."""
    known = ctx.compat.model(ctx.variant.model.id)
    needed = ctx.compat.releases_file.format_loaders.get(known.format) if known else None
    if needed is None or not ctx.release_ok:
        return
    chosen = ctx.variant.engine.load_choices
    release = ctx.engine_release
    flag = spelling("--load-choices", release)
    default = release["flags"][flag].get("default") if flag else None
    if (chosen or default) == needed:
        return
    fmt = known.format if known else ""
    if needed not in ctx.compat.engine_choices(ctx.release, "load_choices"):
        ctx.add(
            ("engine", "fastdeploy"),
            f"cannot load {fmt} weights of {ctx.variant.model.id}: they need the {needed} loader, which this "
            "release does not have; choose a release that has it",
            ctx.release,
            suggest=False,
        )
        return
    ctx.add(
        ("engine", "load_choices"),
        f"{'loads' if chosen else 'unset: loads'} {fmt} weights of {ctx.variant.model.id} with the "
        f"{chosen or default} loader"
        f"{'' if chosen else ' (the release default)'}, which cannot read them; set "
        f"engine.load_choices: {needed}",
        chosen,
        [needed],
        suggest=False,
        show_value=chosen is not None,
    )
