"""Checks of the variant as a file and of its model source."""

from __future__ import annotations

import re
from fnmatch import fnmatch

from builder.variant.checks.context import Context, check
from worker_runtime.config.release import spelling

# A Hugging Face commit id, as the cache names its snapshot folders.
COMMIT = re.compile(r"^[0-9a-f]{40}$")


@check("name")
def name_matches_file(ctx: Context) -> None:
    """A variant's name is its file name (the build directory and tag come from it)."""
    stem = ctx.loaded.path.stem
    if ctx.loaded.path.parent.is_dir() and ctx.variant.name != stem:
        ctx.add(("name",), f"must match the file name ({stem!r})", ctx.variant.name, [stem])


@check("model.id", "model.allow_patterns", "model.weights", "model.bake")
def download_keeps_what_fastdeploy_reads(ctx: Context) -> None:
    """model.allow_patterns let through every file FastDeploy reads from the model folder."""
    patterns = ctx.variant.model.allow_patterns
    if not patterns or ctx.variant.model.weights_mode == "cached":
        return  # every file is downloaded; or cached: RunPod caches every file, the patterns are checks
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


@check("model.bake", "model.weights", "model.source")
def bake_needs_a_download(ctx: Context) -> None:
    """Baked weights are downloaded at build time: a local path cannot be."""
    if ctx.variant.model.weights_mode == "baked" and ctx.variant.model.source == "local":
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


@check("model.bake", "model.weights")
def weights_and_bake_agree(ctx: Context) -> None:
    """model.weights replaces model.bake: a variant giving both says the same in each."""
    model = ctx.variant.model
    if model.weights and "bake" in model.model_fields_set and model.bake != (model.weights == "baked"):
        ctx.add(
            ("model", "bake"),
            f"contradicts weights: {model.weights}; drop bake (weights replaces it) or make them agree",
            model.bake,
            suggest=False,
        )


@check("model.weights", "model.bake", "model.source", "model.revision", "engine.fastdeploy")
def cached_weights_are_a_pinned_huggingface_commit(ctx: Context) -> None:
    """RunPod caches Hugging Face repositories only, and its cache holds one snapshot per commit: a cached
    variant names the commit (a branch would move away from the snapshot the endpoint cached)."""
    model = ctx.variant.model
    if model.weights_mode != "cached":
        return
    if model.source != "huggingface":
        ctx.add(
            ("model", "source"),
            "weights: cached needs source: huggingface (RunPod's model cache holds Hugging Face "
            "repositories only)",
            model.source,
            ["huggingface"],
        )
    if model.revision is None or not COMMIT.match(model.revision):
        ctx.add(
            ("model", "revision"),
            "weights: cached needs the full 40-character commit id of the repository (the cached snapshot "
            "is named by it; `python -m builder.tools.pin_revisions` finds it)",
            model.revision,
            suggest=False,
        )
    if ctx.release_ok and "--served-model-name" not in ctx.compat.flag_spellings(ctx.release):
        ctx.add(
            ("engine", "fastdeploy"),
            "weights: cached needs a release with --served-model-name (2.2.0 or later): the engine starts "
            "on the snapshot's path and must still answer to the repository id clients send",
            ctx.release,
            suggest=False,
        )
