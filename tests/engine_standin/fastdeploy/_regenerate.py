"""Write ``_flags.json`` from the runtime's ``engine_flags.json``: python -m fastdeploy._regenerate PATH."""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGET = Path(__file__).with_name("_flags.json")


def render(source: Path) -> str:
    releases = json.loads(source.read_text(encoding="utf-8"))["releases"]
    return json.dumps(releases, sort_keys=True, indent=1) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m fastdeploy._regenerate path/to/engine_flags.json", file=sys.stderr)
        return 2
    TARGET.write_text(render(Path(argv[0])), encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
