"""The one variant `deploy` and `test` name: its image (--image, or its versioned tag under --registry)
and its `--env` overrides, checked as the variant file's own fields are."""

from __future__ import annotations

import argparse

from builder.commands.common import prepare_selected
from builder.compat import load_compat
from builder.deploy.env_overrides import LB_ENDPOINT_SETTINGS, OverrideError, parse_overrides
from builder.errors import UsageError
from builder.image.naming import image_tags, registry_note
from builder.image.repository_choice import chosen_registry, require_chosen
from builder.variant.override_check import override_errors
from builder.variant.pipeline import Prepared


def add_image_choice(p: argparse.ArgumentParser, what: str) -> None:
    """--image REF, or the variant's versioned tag under --registry (what `push` pushed)."""
    p.add_argument("--image", metavar="REF", help=f"image to {what} (default: the variant's versioned tag)")
    p.add_argument(
        "--registry", metavar="HOST[/NAMESPACE]", help="registry part of the default image, as for push"
    )


def one_variant(args: argparse.Namespace, *, image_needed: bool = True) -> tuple[Prepared, str]:
    """The one selected variant and the image reference to use ("" when no image is needed)."""
    prepared = prepare_selected(args)
    if len(prepared) != 1:
        raise UsageError(f"{args.verb} takes one variant, not {len(prepared)}")
    args.registry = chosen_registry(args.registry)
    if args.image or not image_needed:
        return prepared[0], args.image or ""
    require_chosen(prepared[0].resolved, args.registry, args.verb)
    note = registry_note(prepared[0].resolved.repository, args.registry)
    if note:
        print(note)
    return prepared[0], image_tags(prepared[0].resolved, args.registry)[0]


def checked_overrides(pairs: list[str], prepared: Prepared) -> dict[str, str]:
    """`--env` values the runtime accepts and that keep the variant consistent (its own checks)."""
    compat = load_compat()
    env = parse_overrides(pairs, prepared.resolved, compat)
    # The endpoint's own ports and health path (checked above) are no variant field to check again.
    variant_env = {k: v for k, v in env.items() if k not in LB_ENDPOINT_SETTINGS}
    problems = [str(p) for p in override_errors(prepared, variant_env, compat)]
    if problems:  # a problem the file's own field shows still comes from the overrides: name them
        given = " ".join(f"--env {k}={v}" for k, v in env.items())
        raise OverrideError([p if p.startswith("--env ") else f"with {given}: {p}" for p in problems])
    return env
