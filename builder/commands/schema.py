"""`build.py schema`: the variant JSON Schema (committed as variants/variant.schema.json)."""

from __future__ import annotations

import argparse
import sys

from builder.commands.common import add_verb
from builder.variant.schema import schema_text

NAME = "schema"
HELP = "print the variant JSON Schema"


def add_parser(subparsers) -> argparse.ArgumentParser:
    return add_verb(subparsers, NAME, HELP)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return 0
