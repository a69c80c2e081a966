"""`build.py check NAME... [--out DIR]`: exit 1 when a build directory differs from a fresh render."""

from __future__ import annotations

import argparse

from builder.commands.common import add_out, add_selection, add_verb, render_selected
from builder.output.render import diff_files, unrelated_files
from builder.paths import display

NAME = "check"
HELP = (
    "exit 1 when a build directory differs from a fresh render (lists missing, changed, extra files: "
    "staged weights/ and wheels/ excepted)"
)
# What Ctrl-C leaves (printed by the CLI in one line).
INTERRUPTED = "nothing was written"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_verb(subparsers, NAME, HELP)
    add_selection(p, default_all=False)
    add_out(p)
    return p


def run(args: argparse.Namespace) -> int:
    status = 0
    for item in render_selected(args):
        diff = diff_files(item.out, item.files)
        # Files no render wrote: a render leaves them, so they are named with what to do about them.
        diff["extra"] += [f"{rel} (not rendered: remove it)" for rel in unrelated_files(item.out, item.files)]
        if any(diff.values()):
            status = 1
            print(f"{display(item.out)} differs from a fresh render of {item.resolved.name}:")
            for kind in ("missing", "changed", "extra"):
                for rel in diff[kind]:
                    print(f"  {kind:8} {rel}")
        else:
            print(f"{display(item.out)} is up to date")
    return status
