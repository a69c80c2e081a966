"""The typed shape of the compatibility data: one pydantic model per file, checked when it is loaded.

A typo in a data file (an unknown key, a missing field, a wrong type) is an error naming the file and the
key path, raised by ``builder.compat.load_compat`` before any variant is read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Arch = Annotated[str, Field(pattern=r"^sm[0-9]+$")]  # CUDA compute capability, e.g. sm80
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
Positive = Annotated[float, Field(gt=0)]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- fastdeploy_releases.yaml ------------------------------------------------------------------------


class PipRoute(_Table):
    """Install route on an nvidia/cuda base: Paddle and FastDeploy wheels from their indexes."""

    paddlepaddle: str
    paddle_index: dict[str, str] = Field(description="CUDA version -> Paddle wheel index")
    fastdeploy: str
    fastdeploy_index: dict[str, str] = Field(
        description="CUDA version, or a wheel group of pip_wheel_groups -> FastDeploy wheel index"
    )


class Bound(_Table):
    minimum: float | None = None
    maximum: float | None = None


Pin = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+$")]


class GuidedBackend(_Table):
    """One guided decoding backend of a release: the exact pins it needs and what they add to an image."""

    packages: list[Pin] = Field(
        min_length=1, description="name==version pins installed in the image's guided decoding layer"
    )
    image_mb: Positive = Field(
        description="estimated size the layer adds on the official image (MB); how it was measured is in "
        "the file's comment"
    )


class GuidedDecoding(_Table):
    """A release's guided decoding: its backends (besides off) and the flags that turn it off."""

    backends: dict[Literal["xgrammar", "guidance"], GuidedBackend]
    excluded_by: list[str] = Field(
        default_factory=list,
        description="engine flags with which the release switches guided decoding off (only a warning)",
    )


class Release(_Table):
    """What building on one FastDeploy release needs (flags: worker_runtime/config/engine_flags.json)."""

    published: bool = Field(
        default=True,
        description="false: a release branch with no image or wheel yet; no variant may select it",
    )
    python: str
    gpu_archs: list[Arch] = Field(
        description="architectures the official image / default wheel runs on (its build's CUDA targets)"
    )
    images: dict[str, str] = Field(default_factory=dict, description="CUDA version -> image tag")
    pip: PipRoute | None = None
    startup_bounds: dict[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")], Bound] = Field(
        default_factory=dict, description="runtime setting -> bounds the release asserts beyond the runtime's"
    )
    guided_decoding: GuidedDecoding | None = Field(
        None, description="guided decoding backends read from the release's source (None: not read)"
    )


class ModelFolder(_Table):
    """What a model folder holds before FastDeploy can start on it (checked for `--weights-from`)."""

    required: list[str] = Field(description="files every model folder has (FastDeploy reads them first)")
    weight_patterns: list[str] = Field(description="weight files: at least one, or every one an index names")
    tokenizer_patterns: list[str] = Field(description="tokenizer files: at least one, of any format")


class ReleasesFile(_Table):
    registry: str
    cuda_bases: dict[str, str]
    base_digests: dict[str, Digest] = Field(default_factory=dict, description="image reference -> digest")
    host_cuda_versions: list[str]
    image_headroom_gb: Positive
    releases: dict[str, Release]
    pip_wheel_groups: dict[str, list[Arch]]
    quantization_memory: dict[str, Positive]
    quantization_archs: dict[str, list[Arch]]
    memory_overhead: Positive
    default_gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)]
    disk_weights_factor: Positive
    min_free_disk_fraction: Annotated[float, Field(ge=0, lt=1)] = Field(
        description="share of the container disk the RunPod SDK's disk check wants free"
    )
    model_files: dict[Literal["common", "paddle", "torch"], list[str]] = Field(
        description="files FastDeploy reads from a model folder, by checkpoint format"
    )
    tensor_parallel_sizes: list[Annotated[int, Field(gt=0)]] = Field(
        description="GPU counts FastDeploy splits a model over (a release's startup bound caps them)"
    )
    model_folder: ModelFolder = Field(description="what a model folder needs (checked for --weights-from)")
    format_loaders: dict[Literal["paddle", "torch"], str] = Field(
        default_factory=dict,
        description="the weight loader (--load-choices) a checkpoint format needs; unlisted: any loader",
    )


# --- gpu_pools.yaml ----------------------------------------------------------------------------------


class GpuType(_Table):
    """One GPU type RunPod may hand out in a pool."""

    id: str = Field(description="RunPod's GPU type id (REST v2 excludedTypes, tests.json gpuTypeId)")
    memory_gb: Positive = Field(description="memory per card")
    arch: Arch


class Pool(_Table):
    representative: str = Field(description="the type tests.json names by default (one of `types`)")
    types: list[GpuType] = Field(min_length=1, description="every type the pool may hand out")

    @property
    def archs(self) -> set[str]:
        return {t.arch for t in self.types}

    def type(self, type_id: str) -> GpuType | None:
        return next((t for t in self.types if t.id == type_id), None)


class PoolsFile(_Table):
    pools: dict[str, Pool]


# --- gpu_archs.yaml ----------------------------------------------------------------------------------


class GpuArchsFile(_Table):
    archs: dict[str, Arch] = Field(description="GPU type id -> CUDA compute capability")


# --- models.yaml -------------------------------------------------------------------------------------


class KnownModel(_Table):
    weights_gb: Positive = Field(description="BF16 checkpoint size")
    params_b: Positive
    arch: Literal["dense", "moe"]
    active_b: Positive | None = None
    context: Annotated[int, Field(gt=0)]
    format: Literal["paddle", "torch"]
    multimodal: bool = False
    num_attention_heads: Annotated[int, Field(gt=0)] | None = Field(
        None, description="attention (query) heads, as the model's config.json; unset: unknown"
    )
    num_key_value_heads: Annotated[int, Field(gt=0)] | None = Field(
        None, description="key-value heads, as the model's config.json; unset: unknown"
    )


class ModelsFile(_Table):
    models: dict[str, KnownModel]


# --- worker_runtime/config/engine_flags.json (the runtime's; keys the builder does not read are ignored) ---


class EngineRelease(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    flags: dict[str, dict[str, Any]]
    quantization: list[str]
    reasoning_parsers: list[str]
    tool_parsers: list[str]
    load_choices: list[str]
    unreleased: bool = False  # read from a branch's source (builder.tools.import_engine_flags --source)


class EngineFlagsFile(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    releases: dict[str, EngineRelease]
