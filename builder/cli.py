"""Command line: `python build.py --variant NAME [...]`. Invalid input exits 2 without a traceback;
an image build/push failure exits 1; `--check` exits 1 when the build directory is out of date."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from builder import __version__
from builder.compat import load_compat
from builder.errors import VariantErrors
from builder.image.context import StagingError, stage
from builder.output.render import RenderError, diff_files, render_files, write_files
from builder.paths import BUILD_DIR, ROOT, VARIANTS_DIR, display
from builder.variant.loader import variant_files
from builder.variant.models import TAG_PATTERN
from builder.variant.pipeline import Prepared, find_variant, prepare
from builder.variant.resolve import Resolved, variant_label
from builder.variant.schema import schema_text

REGISTRY_PATTERN = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="build.py",
        description="Render FastDeploy RunPod worker build directories; build and push their images.",
    )
    sel = p.add_argument_group("selection")
    sel.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME",
        help="variant name (file in the variants folder) or path to a variant YAML file; repeatable",
    )
    sel.add_argument("--all", action="store_true", help="every variant of the variants folder")
    sel.add_argument(
        "--variants-dir",
        type=Path,
        default=VARIANTS_DIR,
        metavar="DIR",
        help="folder of variant files (default: variants/)",
    )
    what = p.add_argument_group("actions")
    what.add_argument("--list", action="store_true", help="list variants as a table")
    what.add_argument("--json", action="store_true", help="with --list: JSON instead of a table")
    what.add_argument("--print", action="store_true", help="print the resolved variant(s) as YAML")
    what.add_argument("--matrix", action="store_true", help="print a CI job matrix (JSON)")
    what.add_argument("--schema", action="store_true", help="print the variant JSON Schema")
    what.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when the build directory differs from a fresh render (lists the files)",
    )
    what.add_argument("--render-only", action="store_true", help="render the build directory, build no image")
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="build directory for one variant, parent folder for several (default: build/NAME)",
    )
    img = p.add_argument_group("images")
    img.add_argument("--push", action="store_true", help="push the built tags and print their digests")
    img.add_argument(
        "--registry", metavar="HOST[/NAMESPACE]", help="replace the registry part of the variant's repository"
    )
    img.add_argument("--tag", action="append", default=[], metavar="TAG", help="extra tag; repeatable")
    img.add_argument(
        "--base-image", metavar="IMAGE", help="build argument BASE_IMAGE (override the base image)"
    )
    img.add_argument("--weights-from", type=Path, metavar="DIR", help="fill the context's weights/ from DIR")
    img.add_argument("--wheelhouse", type=Path, metavar="DIR", help="fill the context's wheels/ from DIR")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


# --- image naming ------------------------------------------------------------------------------------


def with_registry(repository: str, registry: str | None) -> str:
    """`--registry HOST[/NAMESPACE]` replaces everything before the image's own name."""
    if not registry:
        return repository
    return f"{registry.rstrip('/')}/{repository.rsplit('/', 1)[-1]}"


def image_tags(resolved: Resolved, registry: str | None = None, extra: Sequence[str] = ()) -> list[str]:
    repo = with_registry(resolved.repository, registry)
    tags = [f"{resolved.name}-{resolved.toolkit_version}", resolved.name, *resolved.extra_tags, *extra]
    return list(dict.fromkeys(f"{repo}:{t}" for t in tags))


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def image_labels(
    resolved: Resolved, *, created: str | None = None, revision: str | None = None
) -> dict[str, str]:
    labels = dict(resolved.labels)
    labels["org.opencontainers.image.created"] = created or _dt.datetime.now(_dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    rev = revision if revision is not None else _git_revision()
    if rev:
        labels["org.opencontainers.image.revision"] = rev
    if resolved.source_url:
        labels["org.opencontainers.image.source"] = resolved.source_url
    labels["io.runpod.fastdeploy.variant"] = variant_label(resolved)
    return dict(sorted(labels.items()))


# --- commands ----------------------------------------------------------------------------------------


def _selected(args: argparse.Namespace, *, default_all: bool) -> list[Path]:
    refs = list(args.variant)
    paths = [find_variant(r, args.variants_dir) for r in refs]
    if args.all or (default_all and not refs):
        paths += [p for p in variant_files(args.variants_dir) if p not in paths]
    return paths


def _prepare_all(paths: list[Path]) -> list[Prepared]:
    compat = load_compat()
    prepared, errors = [], []
    for path in paths:
        try:
            prepared.append(prepare(path, compat))
        except VariantErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise VariantErrors(errors)
    return prepared


def _out_dir(args: argparse.Namespace, name: str, several: bool) -> Path:
    if args.out is None:
        return BUILD_DIR / name
    return args.out / name if several else args.out


def _list(prepared: list[Prepared], as_json: bool) -> None:
    rows = []
    for p in prepared:
        r = p.resolved
        rows.append(
            {
                "name": r.name,
                "model": r.model_id,
                "quantization": r.settings.get("QUANTIZATION", "bf16"),
                "tp": r.gpu_count,
                "gpus": ",".join(r.gpu_ids),
                "fastdeploy": r.release,
                "cuda": r.cuda,
                "bake": r.bake,
                "disk_gb": r.container_disk_gb,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    cols = ["name", "model", "quantization", "tp", "fastdeploy", "cuda", "bake", "disk_gb", "gpus"]
    table = [cols] + [
        [str(row[c]).lower() if isinstance(row[c], bool) else str(row[c]) for c in cols] for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def _matrix(prepared: list[Prepared]) -> None:
    include = [
        {
            "variant": p.resolved.name,
            "fastdeploy": p.resolved.release,
            "cuda": p.resolved.cuda,
            "gpu_count": p.resolved.gpu_count,
            "bake": p.resolved.bake,
        }
        for p in prepared
    ]
    print(json.dumps({"include": include}, sort_keys=True))


def _build(args: argparse.Namespace, prepared: Prepared, out: Path) -> int:
    r = prepared.resolved
    stage(out, r, weights_from=args.weights_from, wheelhouse=args.wheelhouse)
    tags = image_tags(r, args.registry, args.tag)
    labels = image_labels(r)
    build_args = {"BASE_IMAGE": args.base_image} if args.base_image else {}
    # Imported here: the Docker SDK is only needed when an image is built.
    import builder.image.docker as images

    try:
        image_id = images.build_image(out, tags=tags, labels=labels, build_args=build_args, out=sys.stdout)
        print(f"built {r.name}: {image_id}")
        for tag in tags:
            print(f"  {tag}")
        if args.push:
            digests = images.push_image(tags, out=sys.stdout)
            for tag, digest in digests.items():
                print(f"pushed {tag}@{digest}")
    except images.ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def unpinned_weights_warning(resolved: Resolved) -> str | None:
    """A warning when baked weights are not pinned to a revision (not an error: exit code unchanged)."""
    if not resolved.bake or resolved.revision:
        return None
    return (
        f"{resolved.name} bakes {resolved.model_id} without model.revision, so the image is not "
        "reproducible: a later build may bake different weights. Pin them by setting model.revision in "
        f"the variant to a commit id of the model repository (its history on the hub, or "
        f"`git ls-remote https://huggingface.co/{resolved.model_id} HEAD` for Hugging Face)"
    )


def run(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    if args.schema:
        sys.stdout.write(schema_text())
        return 0
    if args.tag:
        for tag in args.tag:
            if not re.match(TAG_PATTERN, tag):
                p.error(
                    f"--tag {tag!r} is not a valid image tag (letters, digits, '_', '.', '-'; at most 128)"
                )
    if args.registry and not REGISTRY_PATTERN.match(args.registry):
        p.error(f"--registry {args.registry!r} is not HOST[:PORT][/NAMESPACE] in lower case")
    if args.list or args.matrix:
        prepared = _prepare_all(_selected(args, default_all=True))
        _list(prepared, args.json) if args.list else _matrix(prepared)
        return 0
    if not args.variant and not args.all:
        p.error("choose --variant NAME (repeatable) or --all; --list shows the variants")
    prepared = _prepare_all(_selected(args, default_all=False))
    if args.print:
        docs = [p_.resolved.to_dict() for p_ in prepared]
        sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True))
        return 0
    for p_ in prepared:
        warning = unpinned_weights_warning(p_.resolved)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    compat = load_compat()
    several = len(prepared) > 1
    rendered = [
        (p_, _out_dir(args, p_.resolved.name, several), render_files(p_.resolved, compat)) for p_ in prepared
    ]
    if args.check:
        status = 0
        for p_, out, files in rendered:
            diff = diff_files(out, files)
            if any(diff.values()):
                status = 1
                print(f"{display(out)} differs from a fresh render of {p_.resolved.name}:")
                for kind in ("missing", "changed", "extra"):
                    for rel in diff[kind]:
                        print(f"  {kind:8} {rel}")
            else:
                print(f"{display(out)} is up to date")
        return status
    status = 0
    for p_, out, files in rendered:
        changed = write_files(out, files)
        print(f"rendered {p_.resolved.name} into {display(out)} ({len(files)} files, {len(changed)} changed)")
        if not args.render_only:
            status = max(status, _build(args, p_, out))
    return status


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.json and not args.list:
        p.error("--json goes with --list")
    if (args.weights_from or args.wheelhouse or args.push) and (args.render_only or args.check):
        p.error("--weights-from, --wheelhouse and --push need a build (drop --render-only/--check)")
    try:
        return run(args, p)
    except VariantErrors as exc:
        for error in exc.errors:
            print(f"error: {error}", file=sys.stderr)
        print(f"{len(exc.errors)} error(s); nothing was written", file=sys.stderr)
        return 2
    except (RenderError, StagingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
