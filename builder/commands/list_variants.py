"""`build.py list [--json]`: the variants as a table (or JSON)."""

from __future__ import annotations

import argparse
import json

from builder.commands.common import add_selection, add_verb, prepare_each, report_broken, selected

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
    prepared, broken = prepare_each(selected(args, default_all=True))
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
                "weights": r.weights,
                "disk_gb": r.container_disk_gb,
            }
        )
    # A broken file is a row of its own (its errors on stderr): it hides none of the others.
    rows += [{"name": path.stem, "broken": True} for path in broken]
    status = report_broken(broken)
    if args.json:
        print(json.dumps(rows, indent=2))
        return status
    table = [list(COLUMNS)] + [
        [_cell(row.get(c, "BROKEN" if c == "model" else "")) for c in COLUMNS] for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return status


def _cell(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
