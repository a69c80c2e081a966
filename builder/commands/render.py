"""`build.py render NAME... [--out DIR]`: write the build directories, build no image."""

from __future__ import annotations

import argparse

from builder.commands.common import Rendered, add_out, add_selection, add_verb, render_selected
from builder.output.render import write_files
from builder.paths import display

NAME = "render"
HELP = "render the build directories (Dockerfile, manifests, runtime) and stop"
# What Ctrl-C leaves (printed by the CLI in one line).
INTERRUPTED = (
    "a build directory may hold old and new files side by side (never a half-written one); running `render` "
    "again completes it"
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_verb(
        subparsers,
        NAME,
        HELP,
        "Render build/NAME (or --out DIR). DIR's .rendered manifest lists the rendered files; "
        "a re-render removes only those no longer rendered (a non-empty DIR without one is refused).",
    )
    add_selection(p, default_all=False)
    add_out(p)
    return p


def write(item: Rendered) -> None:
    changed = write_files(item.out, item.files)
    print(
        f"rendered {item.resolved.name} into {display(item.out)} "
        f"({len(item.files)} files, {len(changed)} changed)"
    )
    if line := guided_size_line(item.resolved):
        print(line)


def guided_size_line(resolved) -> str | None:
    """What the guided decoding layer adds to the image (None: no backend)."""
    if not resolved.guided_packages:
        return None
    return (
        f"  guided decoding {resolved.guided_backend}: {', '.join(resolved.guided_packages)} add about "
        f"{resolved.guided_image_mb / 1000:.1f} GB to the image (an estimate from the wheels' sizes, "
        "builder/compat/fastdeploy_releases.yaml)"
    )


def run(args: argparse.Namespace) -> int:
    for item in render_selected(args):
        write(item)
    return 0
