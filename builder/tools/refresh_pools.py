"""Refresh the GPU pools of the compatibility data from RunPod's catalogue (maintainers; needs an API key).

    python -m builder.tools.refresh_pools            # GET /v2/catalog/gpus, rewrite the pools block
    python -m builder.tools.refresh_pools --check    # change nothing; exit 1 when a pool changed
    python -m builder.tools.refresh_pools --api-url http://127.0.0.1:8080   # another API (a fake)

RunPod's REST v2 catalogue is the authoritative pool <-> GPU type map: each type carries its serverless
`pool` (null: in none) and its memory. It gives no architecture, so each type's compute capability comes
from builder/compat/gpu_archs.yaml; a pool type missing there stops the refresh with what to add. Only the
``pools:`` block of builder/compat/gpu_pools.yaml is rewritten (its header comments stay); a pool keeps its
representative type while the pool still holds it. The key is RUNPOD_API_KEY (or the runpod config file)
and is never printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from builder.compat import GPU_ARCHS_FILE, POOLS_FILE
from builder.errors import BuilderError
from builder.paths import COMPAT_DIR
from builder.tools.pin_bases import replace_top_level

KEY = "pools"
Catalogue = list[dict[str, Any]]


class RefreshError(BuilderError):
    """The catalogue cannot be turned into pools (an unknown type, a malformed answer); exit status 2."""


def fetch_catalogue(api_url: str | None) -> Catalogue:
    """GET /v2/catalog/gpus -> its `gpus` list (the key from the environment, masked in every message)."""
    from builder.deploy.api import Client, Request
    from builder.deploy.credentials import api_key, management_base

    client = Client((api_url or management_base()).rstrip("/"), api_key())
    answer = client.call(Request("GET", "/v2/catalog/gpus"))
    gpus = answer.get("gpus") if isinstance(answer, dict) else None
    if not isinstance(gpus, list):
        raise RefreshError("GET /v2/catalog/gpus answered without a `gpus` list: nothing was written.")
    return [g for g in gpus if isinstance(g, dict)]


def pools_from(catalogue: Catalogue, archs: dict[str, str], current: dict[str, Any]) -> dict[str, Any]:
    """The pools block's data: pool id -> representative and types (id, memory_gb, arch), sorted by id."""
    malformed = [
        str(g.get("id"))
        for g in catalogue
        if g.get("pool") and not (isinstance(g.get("id"), str) and isinstance(g.get("memory"), (int, float)))
    ]
    if malformed:
        raise RefreshError(
            f"GET /v2/catalog/gpus lists pool types without a string `id` and a numeric `memory` "
            f"({', '.join(malformed)}): the answer does not match RunPod's GpuType schema. "
            "Nothing was written."
        )
    unknown = sorted(
        f"{g.get('id')} (pool {g['pool']}, {g.get('memory')} GB)"
        for g in catalogue
        if g.get("pool") and g.get("id") not in archs
    )
    if unknown:
        raise RefreshError(
            f"RunPod's catalogue puts GPU types in serverless pools that builder/compat/{GPU_ARCHS_FILE} "
            f"has no architecture for: {'; '.join(unknown)}. The catalogue gives no compute capability: "
            f"add each type id to {GPU_ARCHS_FILE} with its CUDA compute capability (NVIDIA's table, "
            "developer.nvidia.com/cuda-gpus; a MIG slice has its card's), then run the refresh again. "
            "Nothing was written."
        )
    grouped: dict[str, list[dict[str, Any]]] = {}
    for g in sorted(catalogue, key=lambda g: str(g.get("id"))):
        if g.get("pool"):
            memory = g.get("memory")
            grouped.setdefault(g["pool"], []).append(
                {"id": g["id"], "memory_gb": memory, "arch": archs[g["id"]]}
            )
    order = [p for p in current if p in grouped] + sorted(p for p in grouped if p not in current)
    out: dict[str, Any] = {}
    for pool_id in order:
        types = grouped[pool_id]
        ids = [t["id"] for t in types]
        kept = (current.get(pool_id) or {}).get("representative")
        out[pool_id] = {"representative": kept if kept in ids else ids[0], "types": types}
    return out


def pools_block(pools: dict[str, Any]) -> str:
    """The ``pools:`` block, one type a line (byte-stable)."""
    lines = [f"{KEY}:\n"]
    for pool_id, pool in pools.items():
        lines += [
            f"  {pool_id}:\n",
            f"    representative: {json.dumps(pool['representative'])}\n",
            "    types:\n",
        ]
        lines += [
            f"      - {{id: {json.dumps(t['id'])}, memory_gb: {t['memory_gb']:g}, arch: {t['arch']}}}\n"
            for t in pool["types"]
        ]
    return "".join(lines)


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One line per pool that differs: types added, removed, changed; pools added or gone."""
    out = []
    for pool_id in [*old, *(p for p in new if p not in old)]:
        if pool_id not in new:
            out.append(f"gone     {pool_id}")
            continue
        if pool_id not in old:
            out.append(f"new      {pool_id}: {', '.join(t['id'] for t in new[pool_id]['types'])}")
            continue
        before = {t["id"]: t for t in old[pool_id].get("types", [])}
        after = {t["id"]: t for t in new[pool_id]["types"]}
        parts = [f"+{i} ({after[i]['arch']}, {after[i]['memory_gb']:g} GB)" for i in after if i not in before]
        parts += [f"-{i}" for i in before if i not in after]
        parts += [
            f"~{i} ({before[i]['arch']}, {before[i]['memory_gb']:g} GB -> {t['arch']}, {t['memory_gb']:g} GB)"
            for i, t in after.items()
            if i in before and (before[i]["arch"], before[i]["memory_gb"]) != (t["arch"], t["memory_gb"])
        ]
        if old[pool_id].get("representative") != new[pool_id]["representative"]:
            parts.append(f"representative {new[pool_id]['representative']}")
        out.append(
            f"{'changed' if parts else 'same   '}  {pool_id}" + (f": {'; '.join(parts)}" if parts else "")
        )
    return out


def run(
    pools_file: Path,
    archs_file: Path,
    check: bool,
    fetch: Callable[[], Catalogue],
    out: TextIO = sys.stdout,
) -> int:
    text = pools_file.read_text(encoding="utf-8")
    current = (yaml.safe_load(text) or {}).get(KEY) or {}
    archs = (yaml.safe_load(archs_file.read_text(encoding="utf-8")) or {}).get("archs") or {}
    fresh = pools_from(fetch(), archs, current)
    lines = changes(current, fresh)
    for line in lines:
        print(line, file=out)
    changed = any(not line.startswith("same") for line in lines)
    if check:
        return 1 if changed else 0
    if changed:
        pools_file.write_text(replace_top_level(text, KEY, pools_block(fresh)), encoding="utf-8")
        print(f"wrote {len(fresh)} pools to {pools_file.name}", file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m builder.tools.refresh_pools", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a pool changed")
    parser.add_argument(
        "--api-url", help="management API base URL (default: RUNPOD_API_BASE_URL or https://api.runpod.io)"
    )
    parser.add_argument("--file", type=Path, default=COMPAT_DIR / POOLS_FILE, help=argparse.SUPPRESS)
    parser.add_argument("--archs", type=Path, default=COMPAT_DIR / GPU_ARCHS_FILE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        return run(args.file, args.archs, args.check, lambda: fetch_catalogue(args.api_url))
    except BuilderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
