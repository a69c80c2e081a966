"""Which GPU types of a variant's pools its FastDeploy build can run, and which must be excluded (pure).

RunPod hands a worker any type of the pools an endpoint names (REST v2 `gpu.pools`) minus the types in
`gpu.excludedTypes`; a pool may mix architectures (AMPERE_24: sm86 cards, the sm89 L4 and an sm120
Blackwell MIG slice). A type can run the worker when its architecture is one the release's build is
compiled for (`gpu_archs` of fastdeploy_releases.yaml, or the pip wheel group before 2.5) and, under a
quantization with architecture-specific kernels, one of those kernels' architectures. Every other type
is excluded, with the reason; so are the types the variant negates itself ('-TYPE' in hub.gpu_ids).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from builder.compat import Compat
from builder.compat.tables import GpuType


@dataclass(frozen=True)
class Excluded:
    pool: str
    type: GpuType
    reason: str


@dataclass(frozen=True)
class Selection:
    """The GPU types a variant's pools may hand out, split into those kept and those excluded."""

    build: str  # what the archs come from, for messages: "the FastDeploy 2.5.0 image"
    build_archs: tuple[str, ...]
    kept: tuple[tuple[str, GpuType], ...]  # (pool id, type)
    excluded: tuple[Excluded, ...]  # types the build (or the quantization) cannot run
    negated: tuple[str, ...]  # types the variant excludes itself

    @property
    def excluded_types(self) -> list[str]:
        """The `gpu.excludedTypes` of the endpoint: the variant's own negations and the unrunnable types."""
        return sorted({*self.negated, *(e.type.id for e in self.excluded)})

    @property
    def archs(self) -> set[str]:
        """Architectures of the types that remain."""
        return {t.arch for _, t in self.kept}

    def kept_in(self, pool_id: str) -> list[GpuType]:
        return [t for p, t in self.kept if p == pool_id]

    def excluded_in(self, pool_id: str) -> list[Excluded]:
        return [e for e in self.excluded if e.pool == pool_id]


def negated_types(gpu_ids: Iterable[str]) -> list[str]:
    """The type ids of hub.gpu_ids' '-TYPE' entries (RunPod trims surrounding whitespace)."""
    return [i[1:].strip() for i in gpu_ids if i.startswith("-")]


def representative_archs(compat: Compat, gpu_ids: Iterable[str]) -> set[str]:
    """Architecture of each named pool's representative type (what picks a pre-2.5 pip wheel group)."""
    pools = [p for i in gpu_ids if not i.startswith("-") and (p := compat.pool(i))]
    return {t.arch for p in pools if (t := p.type(p.representative))}


def build_archs(
    compat: Compat, release: str, install: str, cuda: str, gpu_ids: Iterable[str]
) -> tuple[str, list[str]]:
    """(label, architectures) of the release build a variant installs (None-safe: unknown release: [])."""
    rel = compat.build_release(release)
    if rel is None:
        return f"FastDeploy {release}", []
    if install == "pip" and rel.pip is not None and cuda not in rel.pip.fastdeploy_index:
        group = compat.pip_wheel_group(representative_archs(compat, gpu_ids))
        if group is not None:
            return f"the FastDeploy {release} wheel of group {group}", compat.releases_file.pip_wheel_groups[
                group
            ]
    what = "image" if install == "image" else "wheel"
    return f"the FastDeploy {release} {what}", list(rel.gpu_archs)


def select(
    compat: Compat,
    release: str,
    install: str,
    cuda: str,
    quantization: str | None,
    gpu_ids: list[str],
) -> Selection:
    """Split the types of the variant's pools into those its build runs and those to exclude."""
    label, archs = build_archs(compat, release, install, cuda, gpu_ids)
    need = compat.archs_for_quantization(quantization)
    negated = negated_types(gpu_ids)
    kept: list[tuple[str, GpuType]] = []
    excluded: list[Excluded] = []
    for pool_id, gpu in compat.pool_types(gpu_ids):
        if gpu.arch not in archs:
            reason = f"{gpu.arch}: {label} is built for {', '.join(archs)} only"
            excluded.append(Excluded(pool_id, gpu, reason))
        elif need and gpu.arch not in need:
            reason = f"{gpu.arch}: quantization {quantization} runs on {'/'.join(need)} only"
            excluded.append(Excluded(pool_id, gpu, reason))
        elif gpu.id not in negated:
            kept.append((pool_id, gpu))
    return Selection(label, tuple(archs), tuple(kept), tuple(excluded), tuple(negated))
