"""`build.py matrix`: the CI job matrix as JSON ({"include": [...]}, one entry per variant)."""

from __future__ import annotations

import argparse
import json

from builder.commands.common import add_selection, add_verb, prepare_selected

NAME = "matrix"
HELP = "JSON job matrix for CI"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_verb(subparsers, NAME, HELP, 'JSON job matrix for CI: {"include": [...]}.')
    add_selection(p, default_all=True)
    return p


def run(args: argparse.Namespace) -> int:
    include = [
        {
            "variant": p.resolved.name,
            "fastdeploy": p.resolved.release,
            "cuda": p.resolved.cuda,
            "gpu_count": p.resolved.gpu_count,
            "bake": p.resolved.bake,
        }
        for p in prepare_selected(args, default_all=True)
    ]
    print(json.dumps({"include": include}, sort_keys=True))
    return 0
