"""`build.py matrix`: the CI job matrix as JSON ({"include": [...]}, one entry per variant)."""

from __future__ import annotations

import argparse
import json

from builder.commands.common import add_selection, add_verb, prepare_each, report_broken, selected

NAME = "matrix"
HELP = "JSON job matrix for CI"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_verb(subparsers, NAME, HELP, 'JSON job matrix for CI: {"include": [...]}.')
    add_selection(p, default_all=True)
    return p


def run(args: argparse.Namespace) -> int:
    prepared, broken = prepare_each(selected(args, default_all=True))
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
    print(json.dumps({"include": include}, sort_keys=True))  # the good ones; a broken file fails the job
    return report_broken(broken)
