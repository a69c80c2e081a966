"""What a checkpoint folder must hold beyond its patterns: every shard its weights index names. Shared
by the runtime (a cached snapshot) and the builder (a `--weights-from` folder), so both judge a folder
alike. Standard library only."""

from __future__ import annotations

import json
import os


class UnreadableIndex(ValueError):
    """A weights index (``*.index.json``) that cannot be read: the folder is not usable as it is."""

    def __init__(self, index: str) -> None:
        super().__init__(index)
        self.index = index


def missing_shards(path: str, files: list[str]) -> list[str]:
    """Weight files a checkpoint index (``*.index.json``: its ``weight_map``) names but ``files`` (paths
    relative to ``path``) lacks; raises UnreadableIndex for an index it cannot read."""
    named: set[str] = set()
    for index in (f for f in files if f.endswith(".index.json")):
        try:
            with open(os.path.join(path, index), encoding="utf-8") as f:
                weight_map = json.load(f).get("weight_map") or {}
        except (OSError, ValueError, AttributeError):
            raise UnreadableIndex(index) from None
        folder = os.path.dirname(index)
        named.update(os.path.join(folder, v).replace(os.sep, "/") for v in weight_map.values())
    have = set(files)
    return sorted(n for n in named if n not in have)
