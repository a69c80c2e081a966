"""Pin the base images of the compatibility data by digest (maintainers; needs the registries).

    python -m builder.tools.pin_bases            # ask each registry, rewrite base_digests in the file
    python -m builder.tools.pin_bases --check    # exit 1 when a tag now points elsewhere (or is unpinned)
    python -m builder.tools.pin_bases --image REF [--image REF ...]   # only these references

A tag is whatever its registry says today; a digest is one image forever. With a pin, the rendered
Dockerfile's BASE_IMAGE is ``name:tag@sha256:...``, so a rebuild anywhere starts from the same base layers
and the layers above it can be identical. Every base the data names is asked for (official FastDeploy
images per release and CUDA version, and the CUDA bases of the pip route): a HEAD request for its manifest
(index) with an anonymous token when the registry asks for one, read from ``Docker-Content-Digest``.
Only the ``base_digests:`` block of builder/compat/fastdeploy_releases.yaml is rewritten; the rest of
the file, comments included, stays as it is.
"""

from __future__ import annotations

import argparse
import re
import sys
import urllib.error
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from builder.image.manifest_check import TokenUnavailable, head_manifest, scheme, split_reference
from builder.paths import COMPAT_DIR

RELEASES_FILE = COMPAT_DIR / "fastdeploy_releases.yaml"
KEY = "base_digests"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class PinError(Exception):
    """A registry could not tell a digest; the message names the image and the reason."""


def base_refs(data: dict) -> list[str]:
    """Every base image reference the compatibility data names, sorted."""
    refs = set((data.get("cuda_bases") or {}).values())
    registry = data["registry"]
    for release in (data.get("releases") or {}).values():
        for tag in ((release or {}).get("images") or {}).values():
            refs.add(f"{registry}/{tag}")
    return sorted(refs)


split_ref = split_reference  # host/name:tag -> (registry host, repository, tag), Docker's conventions


def registry_digest(ref: str) -> str:
    """The digest the registry serves for ``ref`` now (its manifest list when it has one)."""
    host, repository, tag = split_ref(ref)
    url = f"{scheme(host)}://{host}/v2/{repository}/manifests/{tag}"
    try:
        answer = head_manifest(url, repository)  # anonymous: a base image is public
    except TokenUnavailable as exc:
        raise PinError(f"{ref}: {host} gave no pull token ({exc})") from None
    except (urllib.error.URLError, OSError) as exc:
        raise PinError(f"{ref}: {host} cannot be reached ({exc})") from None
    if answer.status >= 400:
        raise PinError(f"{ref}: {url} answered HTTP {answer.status} {answer.reason}")
    digest = answer.headers.get("Docker-Content-Digest", "")
    if not DIGEST.match(digest):
        raise PinError(f"{ref}: the registry sent no usable Docker-Content-Digest ({digest!r})")
    return digest


def digests_block(pins: dict[str, str]) -> str:
    """The ``base_digests:`` block, sorted, one reference a line (byte-stable)."""
    if not pins:
        return f"{KEY}: {{}}\n"
    return f"{KEY}:\n" + "".join(f'  "{ref}": "{pins[ref]}"\n' for ref in sorted(pins))


def replace_block(text: str, pins: dict[str, str]) -> str:
    """``text`` with its ``base_digests:`` block replaced (appended when missing); other lines untouched."""
    return replace_top_level(text, KEY, digests_block(pins))


def replace_top_level(text: str, key: str, block: str) -> str:
    """``text`` with the top-level YAML block ``key:`` (its indented lines) replaced by ``block``
    (appended when missing); every other line, comments included, stays as it is."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{key}:")), None)
    if start is None:
        return text + ("" if text.endswith("\n") else "\n") + "\n" + block
    end = start + 1
    while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
        end += 1
    # Blank lines before the next key belong to the layout, not to the block.
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return "".join(lines[:start]) + block + "".join(lines[end:])


def run(
    path: Path,
    refs: Sequence[str] | None,
    check: bool,
    lookup: Callable[[str], str] = registry_digest,
    out=sys.stdout,
) -> int:
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    pins = dict(data.get(KEY) or {})
    wanted = list(refs) if refs else base_refs(data)
    status, fresh = 0, dict(pins)
    for ref in wanted:
        try:
            digest = lookup(ref)
        except PinError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            continue
        if pins.get(ref) != digest:
            print(
                f"{'differs' if check else 'pinned'}  {ref}@{digest} (was {pins.get(ref) or 'unpinned'})",
                file=out,
            )
            if check:
                status = max(status, 1)
        else:
            print(f"same     {ref}@{digest}", file=out)
        fresh[ref] = digest
    if not check and fresh != pins:
        path.write_text(replace_block(text, fresh), encoding="utf-8")
        print(f"wrote {len(fresh)} pins to {path.name}", file=out)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m builder.tools.pin_bases", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a pin is stale")
    parser.add_argument("--image", action="append", metavar="REF", help="pin only this reference; repeatable")
    parser.add_argument("--file", type=Path, default=RELEASES_FILE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return run(args.file, args.image, args.check)


if __name__ == "__main__":
    raise SystemExit(main())
