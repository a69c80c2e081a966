"""`build.py print NAME...`: the resolved variants as YAML."""

from __future__ import annotations

import argparse
import sys

import yaml

from builder.commands.common import add_selection, add_verb, prepare_selected

NAME = "print"
HELP = "print the resolved variants as YAML (what the compatibility data filled in)"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_verb(subparsers, NAME, HELP)
    add_selection(p, default_all=False)
    return p


def run(args: argparse.Namespace) -> int:
    docs = [p.resolved.to_dict() for p in prepare_selected(args)]
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True))
    return 0
