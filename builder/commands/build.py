"""`build.py build NAME... [image options]`: render, stage weights and wheels, build the image."""

from __future__ import annotations

import argparse
import sys

from builder.commands.common import (
    Rendered,
    add_image_options,
    add_out,
    add_selection,
    add_verb,
    render_selected,
    unpinned_download_warning,
)
from builder.commands.render import write
from builder.image.context import stage
from builder.image.layer_inputs import layer_labels
from builder.image.naming import check_tags, image_labels, image_tags
from builder.image.repository_choice import chosen_registry, require_chosen

NAME = "build"
HELP = "render, then build the image with the Docker engine (what `build.py --variant NAME` does)"
# What Ctrl-C leaves (printed by the CLI in one line).
INTERRUPTED = (
    "the build directory is written and Docker keeps every layer it finished: running the command again "
    "goes on from there (a cut-off push is completed by pushing again)"
)


def add_parser(subparsers, name: str = NAME, help: str = HELP) -> argparse.ArgumentParser:
    p = add_verb(subparsers, name, help)
    add_selection(p, default_all=False)
    add_out(p)
    add_image_options(p)
    return p


def build_one(args: argparse.Namespace, item: Rendered, *, push: bool) -> int:
    """Stage, build (and push) one rendered variant; a Docker failure is reported and its status returned."""
    # Imported here: only a build needs the Docker SDK.
    from builder.image import docker

    r = item.resolved
    stage(item.out, r, weights_from=args.weights_from, wheelhouse=args.wheelhouse)
    tags = image_tags(r, args.registry, args.tag)
    labels = {**image_labels(r), **layer_labels(item.out, r, args.base_image or r.base_image)}
    build_args = {"BASE_IMAGE": args.base_image} if args.base_image else {}
    try:
        cache = docker.pull_cache(args.cache_from, out=sys.stdout) if args.cache_from else []
        build_image = docker.build_image
        if args.builder == "buildkit":
            from builder.image.buildkit import build_image_buildkit as build_image
        image_id = build_image(
            item.out, tags=tags, labels=labels, build_args=build_args, out=sys.stdout, cache_from=cache
        )
        print(f"built {r.name}: {image_id}")
        for tag in tags:
            print(f"  {tag}")
        if push:
            for tag, digest in docker.push_image(tags, out=sys.stdout).items():
                print(f"pushed {tag}@{digest}")
    except docker.ImageError as exc:  # reported, and the other variants still build
        for line in exc.lines():
            print(line, file=sys.stderr)
        return exc.exit_code
    return 0


def build_all(args: argparse.Namespace, *, push: bool) -> int:
    check_tags(args.tag)
    args.registry = chosen_registry(args.registry)
    rendered = render_selected(args)
    for item in rendered:  # every variant before the first write
        require_chosen(item.resolved, args.registry, "push" if push else "build")
    for item in rendered:
        warning = unpinned_download_warning(item.resolved, args.weights_from)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    status = 0
    for item in rendered:
        write(item)
        status = max(status, build_one(args, item, push=push))
    return status


def run(args: argparse.Namespace) -> int:
    return build_all(args, push=False)
