"""Compatibility data: FastDeploy releases, RunPod GPU pools and known models (the YAML files of this
folder) plus the runtime's per-release engine flag table (worker_runtime/config/engine_flags.json), typed and
checked when loaded, and the sizing rules that go with them (memory, disk, weights).

Queries are named by what they return: ``build_release`` (images, Python, pip route of a release),
``engine_release`` (its flag table entry, as the runtime reads it), ``engine_choices`` (one of its lists).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from builder.compat.tables import (
    EngineFlagsFile,
    GpuArchsFile,
    GpuType,
    KnownModel,
    ModelsFile,
    Pool,
    PoolsFile,
    Release,
    ReleasesFile,
)
from builder.errors import BuilderError, format_path
from builder.paths import COMPAT_DIR, ENGINE_FLAGS, display

RELEASES_FILE = "fastdeploy_releases.yaml"
POOLS_FILE = "gpu_pools.yaml"
GPU_ARCHS_FILE = "gpu_archs.yaml"
MODELS_FILE = "models.yaml"


def version_key(text: str) -> tuple[int, ...]:
    """Sort key of a dotted version ("2.10.0" after "2.9.0"); not a version: first."""
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return (0,)


@dataclass(frozen=True)
class Heads:
    """A model's attention heads and key-value heads (None: not known)."""

    attention: int | None
    key_value: int | None

    @classmethod
    def of_config(cls, config: Any) -> Heads:
        """The heads a model's config.json declares (a multimodal model's text_config when nested);
        key-value heads default to the attention heads (no grouped-query attention)."""
        if not isinstance(config, dict):
            return cls(None, None)
        if "num_attention_heads" not in config and isinstance(config.get("text_config"), dict):
            config = config["text_config"]
        attention = config.get("num_attention_heads")
        kv = config.get("num_key_value_heads", attention)
        return cls(*(n if type(n) is int and n > 0 else None for n in (attention, kv)))


def tensor_parallel_problem(size: int, heads: Heads) -> str | None:
    """Why `size` GPUs cannot split a model with `heads`, or None. Every GPU gets whole attention heads;
    key-value heads are split the same way, or each copied to tp/kv GPUs when there are fewer of them."""
    problems = []
    if heads.attention is not None and heads.attention % size:
        problems.append(f"its {heads.attention} attention heads")
    kv = heads.key_value
    if kv is not None and kv % size and not (kv < size and size % kv == 0):
        problems.append(f"its {kv} key-value heads")
    if not problems:
        return None
    return f"{' and '.join(problems)} do not split evenly over {size} GPUs"


class CompatError(BuilderError):
    """A compatibility data file is broken: every problem names the file and the key path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))

    def lines(self) -> list[str]:
        return [f"error: {p}" for p in self.problems]


@dataclass(frozen=True)
class Compat:
    releases_file: ReleasesFile
    pools: dict[str, Pool]
    gpu_archs: dict[str, str]  # GPU type id -> compute capability (gpu_archs.yaml)
    models: dict[str, KnownModel]
    engine: dict[
        str, dict[str, Any]
    ]  # engine_flags.json "releases": release -> entry, as the runtime reads it

    # --- releases ----------------------------------------------------------------------------------
    def release_names(self) -> list[str]:
        """Releases a variant can name: published, with build data and a flag table (engine_flags.json)."""
        published = {n for n, r in self.releases_file.releases.items() if r.published}
        return sorted(published & set(self.engine), key=version_key)

    def unpublished(self, name: str) -> bool:
        """Whether the release is in the data but not published yet (a branch; no variant may select it)."""
        rel = self.build_release(name)
        return rel is not None and not rel.published

    def build_release(self, name: str) -> Release | None:
        """Images, Python and pip route of a release (None: unknown)."""
        return self.releases_file.releases.get(name)

    def engine_release(self, name: str) -> dict[str, Any]:
        """The release's entry of engine_flags.json ({} when unknown), for the runtime's own checks."""
        return self.engine.get(name, {})

    def flag_table(self) -> dict[str, Any]:
        """The whole engine flag table in the shape ``worker_runtime.config.settings.load_settings`` takes."""
        return {"releases": self.engine}

    def engine_choices(self, name: str, key: str) -> list[str]:
        """One list of the flag table: quantization, reasoning_parsers, tool_parsers, load_choices."""
        return list(self.engine_release(name).get(key) or [])

    def flag_spellings(self, name: str) -> dict[str, Any]:
        """Every spelling the release accepts (flags, negative forms, aliases) -> flag spec."""
        out: dict[str, Any] = {}
        for flag, spec in self.engine_release(name).get("flags", {}).items():
            out[flag] = spec
            if spec.get("negative_form"):
                out[spec["negative_form"]] = spec
            for alias in spec.get("aliases") or ():
                out[alias] = spec
        return out

    # --- images and CUDA ----------------------------------------------------------------------------
    def cuda_versions(self, release: str, install: str) -> list[str]:
        """CUDA versions the release is published for on an install route ("image" or "pip")."""
        rel = self.build_release(release)
        if rel is None:
            return []
        if install == "image":
            return sorted(rel.images, key=version_key)
        return sorted(rel.pip.paddle_index if rel.pip else {}, key=version_key)

    def official_image(self, release: str, cuda: str) -> str | None:
        rel = self.build_release(release)
        tag = rel.images.get(cuda) if rel else None
        return self.pinned(f"{self.releases_file.registry}/{tag}") if tag else None

    def cuda_base_image(self, cuda: str) -> str | None:
        """The nvidia/cuda base image of the pip route for a CUDA version."""
        return self.pinned(self.releases_file.cuda_bases.get(cuda))

    def pinned(self, image: str | None) -> str | None:
        """``name:tag@sha256:...`` when base_digests pins the image (builder.tools.pin_bases), else as is."""
        digest = self.releases_file.base_digests.get(image) if image else None
        return f"{image}@{digest}" if digest else image

    def host_cuda_versions(self, from_version: str) -> list[str]:
        """Host CUDA versions a worker of this CUDA version runs on: that version and newer."""
        hosts = self.releases_file.host_cuda_versions
        return [v for v in hosts if version_key(v) >= version_key(from_version)]

    def newest_release_for(self, archs: set[str]) -> str | None:
        """The newest release with an official image whose build covers every architecture."""
        fits = [
            name
            for name in self.release_names()
            if (rel := self.build_release(name)) and rel.images and archs <= set(rel.gpu_archs)
        ]
        return fits[-1] if fits else None

    def pip_wheel_group(self, archs: set[str]) -> str | None:
        """The FastDeploy wheel group (pre-2.5 pip indexes) that covers every architecture, or None."""
        for group, covered in self.releases_file.pip_wheel_groups.items():
            if archs <= set(covered):
                return group
        return None

    # --- quantization -------------------------------------------------------------------------------
    @property
    def quantization_archs(self) -> dict[str, list[str]]:
        """Quantizations that need a GPU architecture -> the architectures that run them."""
        return {q: list(a) for q, a in self.releases_file.quantization_archs.items()}

    def archs_for_quantization(self, quantization: str | None) -> list[str]:
        return list(self.releases_file.quantization_archs.get(quantization or "", []))

    def knows_quantization(self, quantization: str | None) -> bool:
        """Whether the data has a memory factor for the quantization (None: BF16, always known)."""
        return (quantization or "bf16") in self.releases_file.quantization_memory

    def memory_factor(self, quantization: str | None) -> float:
        """Weight memory relative to the BF16 checkpoint under a known quantization (None: BF16)."""
        return self.releases_file.quantization_memory[quantization or "bf16"]

    # --- pools and models ---------------------------------------------------------------------------
    def pool(self, pool_id: str) -> Pool | None:
        return self.pools.get(pool_id)

    def pool_types(self, gpu_ids: Iterable[str]) -> list[tuple[str, GpuType]]:
        """(pool id, type) of every GPU type the named pools may hand out (negated, unknown ids skipped)."""
        return [(i, t) for i in gpu_ids if not i.startswith("-") and (p := self.pool(i)) for t in p.types]

    def gpu_type(self, type_id: str) -> GpuType | None:
        """A GPU type of any pool, by its id."""
        return next((t for p in self.pools.values() for t in p.types if t.id == type_id), None)

    def model(self, model_id: str) -> KnownModel | None:
        return self.models.get(model_id)

    def model_files(self, model_id: str) -> list[str]:
        """File names FastDeploy reads from the model's folder (its format's, or the common ones)."""
        files = self.releases_file.model_files
        known = self.model(model_id)
        return [*files.get("common", []), *(files.get(known.format, []) if known else [])]

    # --- sizing -------------------------------------------------------------------------------------
    @property
    def headroom_gb(self) -> float:
        """Disk the base image and the runtime take on a worker, before weights."""
        return self.releases_file.image_headroom_gb

    @property
    def memory_overhead(self) -> float:
        return self.releases_file.memory_overhead

    @property
    def default_gpu_memory_utilization(self) -> float:
        return self.releases_file.default_gpu_memory_utilization

    def tensor_parallel_sizes(self, release: str) -> list[int]:
        """The tensor parallel sizes a release runs: the data's list, capped by the release's bound."""
        build = self.build_release(release)
        bound = build.startup_bounds.get("TENSOR_PARALLEL_SIZE") if build else None
        cap = bound.maximum if bound is not None and bound.maximum is not None else math.inf
        return [n for n in self.releases_file.tensor_parallel_sizes if n <= cap]

    def heads(self, model_id: str) -> Heads:
        """The known model's heads (models.yaml), or unknown."""
        known = self.model(model_id)
        return Heads(known.num_attention_heads, known.num_key_value_heads) if known else Heads(None, None)

    def weights_gb(self, model_id: str, declared: float | None = None) -> float | None:
        """BF16 checkpoint size: the variant's ``model.weights_gb``, else models.yaml, else None."""
        if declared is not None:
            return declared
        known = self.model(model_id)
        return known.weights_gb if known else None

    def required_memory_gb(self, weights_gb: float, quantization: str | None) -> float:
        """GPU memory a model needs: weights under the quantization x overhead (activations, KV cache)."""
        return weights_gb * self.memory_factor(quantization) * self.memory_overhead

    @property
    def min_free_disk_fraction(self) -> float:
        """Share of the container disk that must stay free for the RunPod SDK's host check."""
        return self.releases_file.min_free_disk_fraction

    @staticmethod
    def disk_weights_gb(weights_gb: float, weights_mode: str) -> float:
        """Weights on the container disk: none when RunPod's model cache holds them (mounted, not copied)."""
        return 0.0 if weights_mode == "cached" else weights_gb

    def needed_disk_gb(self, weights_gb: float) -> int:
        """Container disk for weights plus the image headroom, with the SDK's free share left over."""
        used = weights_gb * self.releases_file.disk_weights_factor + self.headroom_gb
        return math.ceil(used / (1 - self.min_free_disk_fraction))


# --- loading -----------------------------------------------------------------------------------------


def _typed(model: type[BaseModel], data: Any, file: Path, problems: list[str]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(f"{display(file)}: {format_path(err['loc'])}: {err['msg']}")
        return None


def _read(path: Path, problems: list[str]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        problems.append(f"{display(path)}: cannot be read: {exc}")
        return None


def _pool_checks(pools: PoolsFile, archs: GpuArchsFile, pools_file: str, archs_file: str) -> list[str]:
    """Each pool's representative is one of its types; each type's architecture is the table's."""
    problems = []
    for pool_id, pool in pools.pools.items():
        if pool.type(pool.representative) is None:
            problems.append(
                f"{pools_file}: pools.{pool_id}.representative: {pool.representative!r} is not one of "
                "its types"
            )
        for t in pool.types:
            if archs.archs.get(t.id) != t.arch:
                problems.append(
                    f"{pools_file}: pools.{pool_id}: {t.id!r} is {t.arch} here but "
                    f"{archs.archs.get(t.id, 'missing')} in {archs_file}"
                )
    return problems


def _cross_checks(
    releases: ReleasesFile,
    engine: EngineFlagsFile,
    pools: PoolsFile,
    archs: GpuArchsFile,
    files: dict[str, Path],
) -> list[str]:
    """What one file must agree on with another (or with itself)."""
    rel_file, flags_file = display(files["releases"]), display(files["flags"])
    problems = [
        f"{rel_file}: releases.{name}: no flag table for it in {flags_file}"
        for name in releases.releases
        if name not in engine.releases
    ]
    problems += [
        f"{rel_file}: releases.{name}: {flags_file} marks it unreleased (read from a branch): "
        "set published: false"
        for name, rel in releases.releases.items()
        if rel.published and engine.releases.get(name) is not None and engine.releases[name].unreleased
    ]
    quantizations = {q for entry in engine.releases.values() for q in entry.quantization}
    problems += [
        f"{rel_file}: quantization_memory: no factor for {q!r} (a quantization of {flags_file})"
        for q in sorted(quantizations - set(releases.quantization_memory) - {"bf16"})
    ]
    problems += _pool_checks(pools, archs, display(files["pools"]), display(files["gpu_archs"]))
    if "bf16" not in releases.quantization_memory:
        problems.append(f"{rel_file}: quantization_memory: no factor for 'bf16' (no quantization)")
    for name, rel in releases.releases.items():
        if rel.pip is None:
            continue
        for key in rel.pip.fastdeploy_index:
            if key not in rel.pip.paddle_index and key not in releases.pip_wheel_groups:
                problems.append(
                    f"{rel_file}: releases.{name}.pip.fastdeploy_index.{key}: neither a CUDA version of "
                    "paddle_index nor a group of pip_wheel_groups"
                )
    return problems


@lru_cache(maxsize=4)
def load_compat(compat_dir: Path = COMPAT_DIR, flags_file: Path = ENGINE_FLAGS) -> Compat:
    """The compatibility data, typed and cross-checked; CompatError lists every problem."""
    files = {
        "releases": compat_dir / RELEASES_FILE,
        "pools": compat_dir / POOLS_FILE,
        "gpu_archs": compat_dir / GPU_ARCHS_FILE,
        "models": compat_dir / MODELS_FILE,
        "flags": flags_file,
    }
    problems: list[str] = []
    raw = {key: _read(path, problems) for key, path in files.items()}
    models = {
        "releases": ReleasesFile,
        "pools": PoolsFile,
        "gpu_archs": GpuArchsFile,
        "models": ModelsFile,
        "flags": EngineFlagsFile,
    }
    typed = {
        key: _typed(models[key], raw[key], files[key], problems) for key in files if raw[key] is not None
    }
    if not problems:
        problems = _cross_checks(typed["releases"], typed["flags"], typed["pools"], typed["gpu_archs"], files)
    if problems:
        raise CompatError(problems)
    return Compat(
        releases_file=typed["releases"],
        pools=typed["pools"].pools,
        gpu_archs=typed["gpu_archs"].archs,
        models=typed["models"].models,
        engine=raw["flags"]["releases"],
    )
