"""What several verbs share: their options (selection, --out, image options) and the steps from the
selected variant files to rendered build directories."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from builder.compat import load_compat
from builder.errors import UsageError, VariantError, VariantErrors
from builder.output.render import render_files
from builder.paths import BUILD_DIR, default_variants_dir, display
from builder.variant.loader import variant_files
from builder.variant.pipeline import Prepared, find_variant, prepare
from builder.variant.resolve import Resolved

# --- options -------------------------------------------------------------------------------------------


def add_verb(subparsers, name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
    """The verb's parser: `help` is its line in `build.py --help`, `description` (default: help) its page."""
    description = description or help[:1].upper() + help[1:] + "."
    return subparsers.add_parser(name, help=help, description=description)


def add_selection(p: argparse.ArgumentParser, *, default_all: bool, positional: bool = True) -> None:
    """Which variants: NAME... / --variant NAME (repeatable), --all, --variants-dir."""
    g = p.add_argument_group("selection" + (" (default: every variant)" if default_all else ""))
    if positional:
        g.add_argument(
            "names", nargs="*", metavar="NAME", help="variant name or path to a variant file (as --variant)"
        )
    g.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME",
        help="variant name (file in the variants folder) or path to a variant YAML file; repeatable",
    )
    g.add_argument("--all", action="store_true", help="every variant of the variants folder")
    g.add_argument(
        "--variants-dir",
        type=Path,
        default=default_variants_dir(),
        metavar="DIR",
        help="folder of variant files (default: ./variants when the working directory has one, else the "
        "shipped variants)",
    )


def add_out(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="build directory for one variant, parent folder for several (default: build/NAME)",
    )


def add_image_options(p: argparse.ArgumentParser) -> None:
    """How an image is built and named: --registry, --tag, --base-image, --weights-from, --wheelhouse."""
    g = p.add_argument_group("images")
    g.add_argument(
        "--registry",
        metavar="HOST[/NAMESPACE]",
        help="replace the registry part of the variant's repository (HOST/NAMESPACE/<image name>); a value "
        "ending with the image's name (ghcr.io/acme/fastdeploy-worker) is taken as the whole repository",
    )
    g.add_argument("--tag", action="append", default=[], metavar="TAG", help="extra tag; repeatable")
    g.add_argument(
        "--base-image", metavar="IMAGE", help="build argument BASE_IMAGE (override the base image)"
    )
    g.add_argument("--weights-from", type=Path, metavar="DIR", help="fill the context's weights/ from DIR")
    g.add_argument("--wheelhouse", type=Path, metavar="DIR", help="fill the context's wheels/ from DIR")
    g.add_argument(
        "--cache-from",
        action="append",
        default=[],
        metavar="IMAGE",
        help="pull IMAGE (when it exists) and reuse its layers; a later push skips the layers it holds",
    )
    g.add_argument(
        "--builder",
        choices=("classic", "buildkit"),
        default="classic",
        help="classic: the engine's classic builder through its API (default, any engine); buildkit: the "
        "Docker CLI's BuildKit (buildx plugin or a client before 23.0), stages in parallel; same layers",
    )


# --- from the selection to rendered files ---------------------------------------------------------------


def selected(args: argparse.Namespace, *, default_all: bool) -> list[Path]:
    """The variant files the options name (every variant when none is named and `default_all`)."""
    refs = [*getattr(args, "names", []), *args.variant]
    if not refs and not args.all and not default_all:
        raise UsageError(
            "choose the variants: NAME or --variant NAME (repeatable), or --all; `build.py list` shows them"
        )
    paths = [find_variant(r, args.variants_dir) for r in refs]
    if args.all or (default_all and not refs):
        paths += [p for p in variant_files(args.variants_dir) if p not in paths]
    return paths


def prepare_all(paths: list[Path]) -> list[Prepared]:
    """Every file loaded, checked and resolved; the errors of all files raised together."""
    prepared, broken = prepare_each(paths)
    if broken:
        raise VariantErrors(distinct_errors(broken))
    return prepared


def prepare_each(paths: list[Path]) -> tuple[list[Prepared], dict[Path, VariantErrors]]:
    """Every file loaded, checked and resolved on its own: the good ones, and each broken one's errors
    (a table of the folder still shows the variants that work)."""
    compat = load_compat()
    prepared: list[Prepared] = []
    broken: dict[Path, VariantErrors] = {}
    for path in paths:
        try:
            prepared.append(prepare(path, compat))
        except VariantErrors as exc:
            broken[path] = exc
    return prepared, broken


def distinct_errors(broken: dict[Path, VariantErrors]) -> list[VariantError]:
    """Every broken file's errors, in file order, each once: a base file's error is one error, however
    many variants extend it."""
    errors = [e for exc in broken.values() for e in exc.errors]
    return list({str(e): e for e in errors}.values())


def report_broken(broken: dict[Path, VariantErrors]) -> int:
    """Print each broken file's errors (stderr); the exit status: 2 when any, else 0."""
    for e in distinct_errors(broken):
        print(f"error: {e}", file=sys.stderr)
    if broken:
        names = ", ".join(display(p) for p in broken)
        print(f"{len(broken)} broken variant file(s): {names}", file=sys.stderr)
    return 2 if broken else 0


def prepare_selected(args: argparse.Namespace, *, default_all: bool = False) -> list[Prepared]:
    return prepare_all(selected(args, default_all=default_all))


def out_dir(args: argparse.Namespace, name: str, several: bool) -> Path:
    if args.out is None:
        return BUILD_DIR / name
    return args.out / name if several else args.out


def unpinned_download_warning(resolved: Resolved, weights_from: Path | None) -> str | None:
    """One line when a build downloads baked weights at a branch head: only from ModelScope or AI Studio,
    since the build gave a Hugging Face branch its commit first (builder.image.model_revision). None
    otherwise (a revision, not baked, or --weights-from)."""
    if not resolved.bake or resolved.revision or weights_from is not None:
        return None
    return (
        f"{resolved.name} bakes {resolved.model_id} as its default branch is today (no model.revision), "
        "so a later build may bake other weights; set model.revision to a commit id to keep these"
    )


@dataclass(frozen=True)
class Rendered:
    prepared: Prepared
    out: Path
    files: dict[str, bytes]

    @property
    def resolved(self) -> Resolved:
        return self.prepared.resolved


def render_selected(args: argparse.Namespace) -> list[Rendered]:
    """Render (in memory) every selected variant."""
    return render_prepared(args, prepare_selected(args))


def render_prepared(args: argparse.Namespace, prepared: list[Prepared]) -> list[Rendered]:
    compat = load_compat()
    several = len(prepared) > 1
    return [
        Rendered(p, out_dir(args, p.resolved.name, several), render_files(p.resolved, compat))
        for p in prepared
    ]
