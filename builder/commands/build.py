"""`build.py build NAME... [image options]`: render, stage weights and wheels, build the image."""

from __future__ import annotations

import argparse
import os
import sys

from builder.commands.common import (
    Rendered,
    add_image_options,
    add_out,
    add_selection,
    add_verb,
    prepare_selected,
    render_prepared,
    unpinned_download_warning,
)
from builder.commands.render import write
from builder.compat import load_compat
from builder.image.context import check_weights_from, stage
from builder.image.layer_inputs import layer_labels
from builder.image.model_revision import (
    HubError,
    at_commit,
    branch_to_resolve,
    hub_commit,
    hub_endpoint,
    unreachable_advice,
)
from builder.image.naming import check_tags, image_labels, image_tags, registry_note
from builder.image.repository_choice import chosen_registry, require_chosen
from builder.variant.pipeline import Prepared

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


def at_commits(args: argparse.Namespace, prepared: list[Prepared], environ=os.environ) -> list[Prepared]:
    """Each variant that bakes a branch, at the commit the branch points to now (one line each, what
    is baked); a hub that cannot say ends the command before anything is written."""
    endpoint, token = hub_endpoint(environ), environ.get("HF_TOKEN") or None
    compat = load_compat()
    out = []
    for p in prepared:
        branch = branch_to_resolve(p, args.weights_from)
        if branch is None:
            out.append(p)
            continue
        try:
            commit = hub_commit(endpoint, p.resolved.model_id, branch, token)
        except HubError as exc:
            raise unreachable_advice(exc, p, branch) from None
        print(f"{p.resolved.name}: baking {p.resolved.model_id} at {branch} = {commit}")
        out.append(at_commit(p, commit, compat))
    return out


def build_all(args: argparse.Namespace, *, push: bool) -> int:
    check_tags(args.tag)
    args.registry = chosen_registry(args.registry)
    prepared = prepare_selected(args)
    for p in prepared:  # every variant before the first write, and before the hub is asked
        require_chosen(p.resolved, args.registry, "push" if push else "build")
        if args.weights_from is not None:
            check_weights_from(args.weights_from, p.resolved)
    for note in dict.fromkeys(registry_note(p.resolved.repository, args.registry) for p in prepared):
        if note:
            print(note)
    rendered = render_prepared(args, at_commits(args, prepared))
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
