"""Regenerate the golden build directories under tests/builder/golden/ (one command):

    python -m tests.builder.regen_golden

Golden files hold every rendered file except the copied worker_runtime/ (tested separately against
the source tree, so runtime changes do not churn the goldens).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from builder.compat import load_compat
from builder.output.render import render_files
from builder.paths import VARIANTS_DIR
from builder.variant.pipeline import prepare

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
GOLDEN_VARIANTS = ("ernie-0.3b", "ernie-21b-a3b-thinking")


def golden_files(name: str) -> dict[str, bytes]:
    prepared = prepare(VARIANTS_DIR / f"{name}.yaml")
    files = render_files(prepared.resolved, load_compat())
    return {rel: body for rel, body in files.items() if not rel.startswith("worker_runtime/")}


def main() -> int:
    for name in GOLDEN_VARIANTS:
        target = GOLDEN_DIR / name
        if target.exists():
            shutil.rmtree(target)
        for rel, body in golden_files(name).items():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            (target / rel).write_bytes(body)
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
