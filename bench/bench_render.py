"""Render every shipped variant (load, validate, resolve, render to memory and write) and print the time.

    python bench/bench_render.py [--repeat N]

Prints the best and median wall time of rendering all variants in one process, plus a cold run of the
CLI (`python build.py --all --render-only`) including interpreter start-up. Target: under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from builder.compat import load_compat  # noqa: E402
from builder.output.render import render_files, write_files  # noqa: E402
from builder.paths import VARIANTS_DIR  # noqa: E402
from builder.variant.loader import variant_files  # noqa: E402
from builder.variant.pipeline import prepare  # noqa: E402


def render_all(out: Path) -> int:
    compat = load_compat()
    paths = variant_files(VARIANTS_DIR)
    for path in paths:
        prepared = prepare(path, compat)
        write_files(out / prepared.resolved.name, render_files(prepared.resolved, compat))
    return len(paths)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        times = []
        for i in range(args.repeat):
            start = time.perf_counter()
            count = render_all(out / str(i))
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, str(ROOT / "build.py"), "--all", "--render-only", "--out", str(out / "cli")],
            check=True,
            capture_output=True,
        )
        cold = time.perf_counter() - start
    print(f"variants: {count}")
    print(
        f"in-process render of all variants: first {times[0] * 1000:.0f} ms, "
        f"best {min(times) * 1000:.0f} ms, "
        f"median {statistics.median(times) * 1000:.0f} ms"
    )
    print(f"cold CLI (python build.py --all --render-only): {cold * 1000:.0f} ms (target < 1000 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
