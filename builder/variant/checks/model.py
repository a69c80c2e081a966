"""Checks of the variant as a file and of its model source."""

from __future__ import annotations

from builder.variant.checks.context import Context, check


@check("name")
def name_matches_file(ctx: Context) -> None:
    """A variant's name is its file name (the build directory and tag come from it)."""
    stem = ctx.loaded.path.stem
    if ctx.loaded.path.parent.is_dir() and ctx.variant.name != stem:
        ctx.add(("name",), f"must match the file name ({stem!r})", ctx.variant.name, [stem])


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
