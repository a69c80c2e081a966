"""Whether a folder of weights (`--weights-from DIR`) is a model FastDeploy can start on, checked as the
runtime checks a cached snapshot: config.json, the weight files (every shard its index names), a
tokenizer. Pure apart from listing the folder and reading its index files."""

from __future__ import annotations

import json
from fnmatch import fnmatch
from pathlib import Path

from builder.compat import Heads, tensor_parallel_problem
from builder.compat.tables import ModelFolder
from worker_runtime.config.checkpoint import UnreadableIndex, missing_shards


def folder_files(folder: Path) -> list[str]:
    """Every file under `folder`, as a relative POSIX path (the host download's `.cache` aside)."""
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".cache") for part in rel.parts):
            out.append(rel.as_posix())
    return out


def _matches(files: list[str], pattern: str) -> bool:
    return any(fnmatch(f.rsplit("/", 1)[-1], pattern) for f in files)


def folder_problems(folder: Path, spec: ModelFolder) -> list[str]:
    """What `folder` lacks to be served, one phrase each (empty: nothing)."""
    files = folder_files(folder)
    top = [f for f in files if "/" not in f]
    problems = [f"no {name}" for name in spec.required if name not in top]
    if not any(_matches(files, p) for p in spec.weight_patterns):
        problems.append(f"no weight file ({', '.join(spec.weight_patterns)})")
    else:
        try:
            shards = missing_shards(str(folder), files)
        except UnreadableIndex as exc:
            shards = [f"{exc.index} (unreadable)"]
        if shards:
            problems.append(f"not the weight files its index names: {', '.join(shards)}")
    if not any(_matches(files, p) for p in spec.tokenizer_patterns):
        problems.append(f"no tokenizer file (one of {', '.join(spec.tokenizer_patterns)})")
    return problems


def folder_heads_problems(folder: Path, tensor_parallel_size: int) -> list[str]:
    """Whether the folder's own config.json splits over `tensor_parallel_size` GPUs (its heads)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ["its config.json is no JSON object"]
    problem = tensor_parallel_problem(tensor_parallel_size, Heads.of_config(config))
    return [f"by its config.json, {problem} (tensor_parallel_size)"] if problem else []
