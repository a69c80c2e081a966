"""`build.py push NAME... [image options]`: render, build and push every tag; print the digests."""

from __future__ import annotations

import argparse

from builder.commands import build

NAME = "push"
HELP = "render, build and push every tag of the image, print the digests"
INTERRUPTED = build.INTERRUPTED


def add_parser(subparsers) -> argparse.ArgumentParser:
    return build.add_parser(subparsers, NAME, HELP)


def run(args: argparse.Namespace) -> int:
    return build.build_all(args, push=True)
