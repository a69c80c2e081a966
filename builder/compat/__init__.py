"""Compatibility data: FastDeploy releases, RunPod GPU pools, known models (YAML under compat/),
plus the per-release engine flag table shared with the runtime (worker_runtime/engine_flags.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from builder.paths import COMPAT_DIR, ENGINE_FLAGS


def version_key(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return (0,)


@dataclass(frozen=True)
class Compat:
    releases: dict[str, Any]  # fastdeploy_releases.yaml
    pools: dict[str, dict[str, Any]]  # gpu_pools.yaml
    models: dict[str, dict[str, Any]]  # models.yaml
    flags: dict[str, Any]  # engine_flags.json "releases"

    # --- releases ---------------------------------------------------------------------------------
    def release_names(self) -> list[str]:
        return sorted(self.flags, key=version_key)

    def release(self, name: str) -> dict[str, Any]:
        return self.releases["releases"].get(name, {})

    def engine(self, name: str) -> dict[str, Any]:
        return self.flags.get(name, {})

    def release_list(self, name: str, key: str) -> list[str]:
        """A list from the engine flag table: quantization, reasoning_parsers, tool_parsers, load_choices."""
        return list(self.engine(name).get(key) or [])

    def release_flags(self, name: str) -> dict[str, Any]:
        """Every spelling the release accepts (flags, negative forms, aliases) -> spec."""
        out: dict[str, Any] = {}
        for flag, spec in self.engine(name).get("flags", {}).items():
            out[flag] = spec
            if spec.get("negative_form"):
                out[spec["negative_form"]] = spec
            for alias in spec.get("aliases") or ():
                out[alias] = spec
        return out

    def cuda_versions(self, release: str, install: str) -> list[str]:
        rel = self.release(release)
        if install == "image":
            return sorted(rel.get("images") or {}, key=version_key)
        pip = rel.get("pip") or {}
        return sorted(pip.get("paddle_index") or {}, key=version_key)

    def official_image(self, release: str, cuda: str) -> str | None:
        tag = (self.release(release).get("images") or {}).get(cuda)
        return self.pinned(f"{self.releases['registry']}/{tag}") if tag else None

    def cuda_base(self, cuda: str) -> str | None:
        return self.pinned(self.releases["cuda_bases"].get(cuda))

    def pinned(self, image: str | None) -> str | None:
        """``name:tag@sha256:...`` when base_digests pins the image (builder.tools.pin_bases), else as is."""
        digest = (self.releases.get("base_digests") or {}).get(image) if image else None
        return f"{image}@{digest}" if digest else image

    def host_cuda_versions(self, from_version: str) -> list[str]:
        return [v for v in self.releases["host_cuda_versions"] if version_key(v) >= version_key(from_version)]

    @property
    def headroom_gb(self) -> float:
        return float(self.releases["image_headroom_gb"])

    @property
    def memory_overhead(self) -> float:
        return float(self.releases["memory_overhead"])

    @property
    def default_gpu_memory_utilization(self) -> float:
        return float(self.releases["default_gpu_memory_utilization"])

    def quantization_factor(self, quantization: str | None) -> float:
        return float(self.releases["quantization_memory"].get(quantization or "bf16", 1.0))

    def quantization_archs(self, quantization: str | None) -> list[str]:
        return list(self.releases.get("quantization_archs", {}).get(quantization or "", []))

    def quantization_arch_table(self) -> dict[str, list[str]]:
        return {q: list(a) for q, a in (self.releases.get("quantization_archs") or {}).items()}

    def pool_archs(self, gpu_ids: list[str]) -> set[str]:
        """GPU architectures of the pools a variant runs on (excluded pools, '-ID', skipped)."""
        return {p["arch"] for i in gpu_ids if not i.startswith("-") and (p := self.pool(i)) and "arch" in p}

    # --- pools and models -------------------------------------------------------------------------
    def pool(self, pool_id: str) -> dict[str, Any] | None:
        return self.pools.get(pool_id)

    def model(self, model_id: str) -> dict[str, Any] | None:
        return self.models.get(model_id)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=4)
def load_compat(compat_dir: Path = COMPAT_DIR, flags_file: Path = ENGINE_FLAGS) -> Compat:
    return Compat(
        releases=_yaml(compat_dir / "fastdeploy_releases.yaml"),
        pools=_yaml(compat_dir / "gpu_pools.yaml")["pools"],
        models=_yaml(compat_dir / "models.yaml")["models"],
        flags=json.loads(flags_file.read_text(encoding="utf-8"))["releases"],
    )
