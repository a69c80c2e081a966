"""Pin the model revision of every shipped baked variant to a commit (maintainers; needs the hub).

    python -m builder.tools.pin_revisions                 # ask the hub, rewrite each variant's revision
    python -m builder.tools.pin_revisions --check         # exit 1 when a branch moved (or is unpinned)
    python -m builder.tools.pin_revisions NAME|FILE ...   # only these variants

A branch is whatever the hub says today; a commit is one set of weights forever. Each baked Hugging Face
variant is asked for: ``GET {endpoint}/api/models/{repo}/revision/{branch}`` answers the commit in ``sha``
(huggingface_hub's ``HfApi.model_info`` builds the same URL, the revision quoted with ``safe=''``). The
branch followed is the one named in the comment of the ``revision:`` line (``revision: <commit>  # main``),
else the revision itself when it is not a commit, else ``main``. Only that one line of each variant file
is rewritten (added after ``id:`` when missing); the rest of the file, comments included, stays as it is.
``--endpoint URL`` (or ``HF_ENDPOINT``, as huggingface_hub reads it) points at another hub; ``HF_TOKEN``,
when set, is sent for gated repositories and never printed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.errors import BuilderError
from builder.image.model_revision import (
    DEFAULT_BRANCH,
    DEFAULT_ENDPOINT,
    HubError,
    hub_commit,
    hub_endpoint,
)
from builder.paths import VARIANTS_DIR, display
from builder.variant.checks.revision import is_commit
from builder.variant.loader import load_variant, read_yaml, variant_files

# `  revision: VALUE  # BRANCH ...` inside the top-level `model:` block.
REVISION_LINE = re.compile(
    r"^(?P<indent>[ \t]+)revision:[ \t]*(?P<value>[^#\n]*?)[ \t]*(?:#[ \t]*(?P<note>.*))?$"
)
ID_LINE = re.compile(r"^(?P<indent>[ \t]+)id:")


class RewriteError(BuilderError):
    """The variant file's `model:` block cannot be rewritten line by line (flow style, no id line)."""


@dataclass(frozen=True)
class Pin:
    path: Path
    model_id: str
    branch: str
    pinned: str | None  # the commit the file names now (None: unpinned or a branch name)


def _model_block(lines: list[str]) -> tuple[int, int]:
    """(first, end) line indexes of the top-level `model:` block's body (end exclusive)."""
    start = next((i for i, line in enumerate(lines) if re.match(r"^model:\s*(#.*)?$", line)), None)
    if start is None:
        return -1, -1
    end = start + 1
    while end < len(lines) and (lines[end].startswith((" ", "\t", "#")) or not lines[end].strip()):
        end += 1
    return start + 1, end


def read_pin(path: Path) -> Pin | None:
    """What a variant file pins, or None when it bakes nothing from Hugging Face or has no model block."""
    model = load_variant(path).data.get("model") or {}
    if not model.get("bake", True) or model.get("source", "huggingface") != "huggingface":
        return None
    if not isinstance(read_yaml(path).get("model"), dict):
        return None  # the model comes from a base file: pin it there
    lines = path.read_text(encoding="utf-8").splitlines()
    first, end = _model_block(lines)
    for line in lines[first:end]:
        m = REVISION_LINE.match(line)
        if m:
            value = m.group("value").strip().strip("'\"")
            note = (m.group("note") or "").split()
            if is_commit(value):
                return Pin(path, model["id"], note[0] if note else DEFAULT_BRANCH, value)
            return Pin(path, model["id"], value or DEFAULT_BRANCH, None)
    return Pin(path, model["id"], DEFAULT_BRANCH, None)


def with_revision(text: str, commit: str, branch: str) -> str:
    """`text` with only the model block's `revision:` line set to `commit  # branch` (added after `id:`)."""
    lines = text.splitlines(keepends=True)
    first, end = _model_block(lines)
    for i in range(first, end):
        m = REVISION_LINE.match(lines[i].rstrip("\n"))
        if m:
            lines[i] = f'{m.group("indent")}revision: "{commit}"  # {branch}\n'
            return "".join(lines)
    for i in range(first, end):
        m = ID_LINE.match(lines[i])
        if m:
            lines.insert(i + 1, f'{m.group("indent")}revision: "{commit}"  # {branch}\n')
            return "".join(lines)
    raise RewriteError(
        "its model block has no `id:` line of its own (a flow mapping like `model: {id: ...}`?): write "
        "`model:` in block style, one key a line, or set model.revision by hand"
    )


def run(paths: Sequence[Path], check: bool, lookup: Callable[[str, str], str], out=sys.stdout) -> int:
    status = 0
    for path in paths:
        pin = read_pin(path)
        if pin is None:
            continue
        try:
            commit = lookup(pin.model_id, pin.branch)
        except HubError as exc:
            print(f"error: {display(path)}: {exc}", file=sys.stderr)
            status = 2
            continue
        where = f"{display(path)}: {pin.model_id}@{pin.branch} -> {commit}"
        if pin.pinned == commit:
            print(f"same     {where}", file=out)
        elif check:
            print(f"differs  {where} (the file pins {pin.pinned or 'nothing'})", file=out)
            status = max(status, 1)
        else:
            try:
                text = with_revision(path.read_text(encoding="utf-8"), commit, pin.branch)
            except RewriteError as exc:
                print(f"error: {display(path)}: {exc}", file=sys.stderr)
                status = 2
                continue
            path.write_text(text, "utf-8")
            print(f"pinned   {where} (was {pin.pinned or 'unpinned'})", file=out)
    return status


def selected(refs: Sequence[str], variants_dir: Path) -> list[Path]:
    if not refs:
        return variant_files(variants_dir)
    return [
        Path(r) if r.endswith((".yaml", ".yml")) or "/" in r else variants_dir / f"{r}.yaml" for r in refs
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m builder.tools.pin_revisions", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "variants", nargs="*", metavar="NAME|FILE", help="only these (default: every variant)"
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a pin is stale")
    parser.add_argument(
        "--endpoint",
        default=hub_endpoint(os.environ),
        metavar="URL",
        help=f"the hub (default: $HF_ENDPOINT, else {DEFAULT_ENDPOINT})",
    )
    parser.add_argument(
        "--variants-dir", type=Path, default=VARIANTS_DIR, metavar="DIR", help="default: variants/"
    )
    args = parser.parse_args(argv)
    token = os.environ.get("HF_TOKEN") or None
    try:
        return run(
            selected(args.variants, args.variants_dir),
            args.check,
            lambda model_id, branch: hub_commit(args.endpoint, model_id, branch, token),
        )
    except BuilderError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
