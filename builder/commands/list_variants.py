"""`build.py list [--json]`: the variants as a table (or JSON)."""

from __future__ import annotations

import argparse
import json

from builder.commands.common import add_selection, add_verb, prepare_selected

NAME = "list"
HELP = "table of the variants: model, quantization, TP, release, CUDA, disk, GPU pools"
COLUMNS = ("name", "model", "quantization", "tp", "fastdeploy", "cuda", "weights", "disk_gb", "gpus")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_verb(subparsers, NAME, HELP)
    add_selection(p, default_all=True)
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    return p


def run(args: argparse.Namespace) -> int:
    rows = []
    for p in prepare_selected(args, default_all=True):
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
                "weights": r.weights,
                "disk_gb": r.container_disk_gb,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [list(COLUMNS)] + [
        [str(row[c]).lower() if isinstance(row[c], bool) else str(row[c]) for c in COLUMNS] for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return 0
