"""Regenerate the golden build directories under tests/builder/golden/ (one command):

    python -m tests.builder.regen_golden

Golden files hold the templated files only: the files a build directory copies as they are
(worker_runtime/, its pins, the fixed files of templates/: `builder.output.render.copied_files`) are
checked by hash against their sources instead, so runtime or template-file changes do not churn them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from builder.compat import load_compat
from builder.output.render import copied_files, render_files
from builder.paths import VARIANTS_DIR
from builder.variant.pipeline import prepare

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
GOLDEN_VARIANTS = ("ernie-0.3b", "ernie-0.3b-lb", "ernie-21b-a3b-thinking", "qwen3-8b-cached")


def golden_files(name: str) -> dict[str, bytes]:
    """The templated files of a variant's build directory, path -> bytes."""
    resolved = prepare(VARIANTS_DIR / f"{name}.yaml").resolved
    copied = copied_files(resolved)
    return {rel: body for rel, body in render_files(resolved, load_compat()).items() if rel not in copied}


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
