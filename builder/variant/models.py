"""Typed variant model (pydantic v2). Every field carries a description: it feeds the JSON Schema and docs.

This is the raw, user-written shape (after `extends` merging). Values the user may leave out stay None
here; `resolve.py` fills them from the compatibility data.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from builder.variant.settings_spec import bounds
from worker_runtime.config.catalog import DEFAULT_RELEASE

# Newlines and control characters: refused in every value a variant gives (they would break a Dockerfile
# instruction or a manifest); the render filters refuse them again (builder.output.render).
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def _no_control(value: str) -> str:
    if CONTROL_CHARS.search(value):
        raise ValueError(
            "newlines and control characters are not allowed (the value is placed in Dockerfile "
            "instructions and manifests)"
        )
    return value


Text = Annotated[str, AfterValidator(_no_control)]
Scalar = str | int | float | bool

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# <registry host[:port]>/<path>, lower case, as Docker accepts it (no tag: tags are computed).
REPOSITORY_PATTERN = r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$"
TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSource(_Strict):
    id: Text = Field(
        description="Model repository id (e.g. baidu/ERNIE-4.5-0.3B-Paddle), or a local path (source: local)."
    )
    revision: Text | None = Field(
        None, description="Pinned revision (commit, tag or branch) downloaded at build or start time."
    )
    source: Literal["huggingface", "aistudio", "modelscope", "local"] = Field(
        "huggingface", description="Where the weights come from."
    )
    bake: bool = Field(
        True,
        description="Bake the weights into the image at /models/<variant name> (else download at start).",
    )
    weights: Literal["baked", "download", "cached"] | None = Field(
        None,
        description="Where a worker gets the weights: baked (in the image at /models/<variant name>), "
        "download (at start), or cached (RunPod's model cache: the endpoint names the model, workers read "
        "its Hugging Face snapshot; needs source huggingface and a commit id as revision). Unset: bake "
        "decides.",
    )
    allow_patterns: list[Text] = Field(
        default_factory=list,
        description="Glob patterns of repository files to download (empty: every file); they must let "
        "through every file FastDeploy reads (config, tokenizer, chat_template.jinja). With weights: "
        "cached, each must match a file of the cached snapshot, else the worker falls back to a download.",
    )
    gated: bool = Field(
        False,
        description="The repository needs a token: weights are downloaded on the build host (HF_TOKEN) "
        "or taken from --weights-from; the token never enters the image.",
    )
    weights_gb: float | None = Field(
        None,
        gt=0,
        description="BF16 checkpoint size in GB; needed for models missing from builder/compat/models.yaml.",
    )
    served_name: Text | None = Field(
        None, description="Name clients send as `model` (SERVED_MODEL_NAME); default: the model id."
    )

    @property
    def weights_mode(self) -> str:
        """The weights route: ``weights`` when set, else ``bake`` (true: baked, false: download)."""
        return self.weights or ("baked" if self.bake else "download")


class Engine(_Strict):
    fastdeploy: Text = Field(
        DEFAULT_RELEASE, description="FastDeploy release (a key of worker_runtime/config/engine_flags.json)."
    )
    cuda: Text = Field(
        "12.6", description="CUDA version of the base image; one the release is published for."
    )
    install: Literal["image", "pip"] = Field(
        "image",
        description="image: FastDeploy's official image; pip: FastDeploy wheels on an nvidia/cuda base.",
    )
    base_image: Text | None = Field(
        None, description="Override the resolved base image (default from the compatibility data)."
    )
    quantization: Text | None = Field(None, description="Quantization (--quantization); unset serves BF16.")
    # Bounds: the runtime's settings (worker_runtime/config/catalog.py); a release's own: builder/compat data.
    tensor_parallel_size: int = Field(
        1, **bounds("TENSOR_PARALLEL_SIZE"), description="GPUs the model is split across (= hub gpuCount)."
    )
    max_model_len: int | None = Field(
        None, **bounds("MAX_MODEL_LEN"), description="Maximum context length (--max-model-len)."
    )
    max_num_seqs: int | None = Field(
        None, **bounds("MAX_NUM_SEQS"), description="Concurrent sequences (--max-num-seqs)."
    )
    gpu_memory_utilization: float | None = Field(
        None,
        **bounds("GPU_MEMORY_UTILIZATION"),
        description="Fraction of GPU memory for the engine (--gpu-memory-utilization).",
    )
    max_concurrency: int | None = Field(
        None, **bounds("MAX_CONCURRENCY"), description="Jobs a worker takes at once (MAX_CONCURRENCY)."
    )
    reasoning_parser: Text | None = Field(None, description="Reasoning parser (--reasoning-parser).")
    tool_call_parser: Text | None = Field(None, description="Tool-call parser (--tool-call-parser).")
    guided_decoding_backend: Literal["xgrammar", "guidance", "off"] = Field(
        "off",
        description="Guided decoding backend (--guided-decoding-backend) that enforces structured outputs "
        "(response_format json_object/json_schema, guided_json, guided_regex, guided_choice, "
        "guided_grammar, structural_tag). off: such requests are refused with 400 (FastDeploy would "
        "ignore them). xgrammar or guidance: the image gets the release's pinned packages in a layer of "
        "its own (several GB: `print` shows the size); not with speculative decoding.",
    )
    load_choices: Text | None = Field(
        None, description="Weight loader (--load-choices); default_v1 for Hugging Face Torch weights."
    )
    limit_mm_per_prompt: dict[str, int] | None = Field(
        None, description='Multimodal items per prompt (--limit-mm-per-prompt), e.g. {"image": 4}.'
    )
    extra_args: list[Text] = Field(
        default_factory=list,
        description="Extra engine arguments (ENGINE_ARGS), each flag checked against the release.",
    )
    settings: dict[str, Scalar | dict[str, Any] | list[Any]] = Field(
        default_factory=dict,
        description=(
            "Any other runtime setting by its environment name (see worker_runtime/config/settings.py)."
        ),
    )
    env: dict[str, Text] = Field(
        default_factory=dict,
        description="Extra environment for the engine (e.g. FD_ATTENTION_BACKEND); not a runtime setting.",
    )


class Image(_Strict):
    repository: Text = Field(
        pattern=REPOSITORY_PATTERN, description="Image repository, e.g. docker.io/acme/fastdeploy-worker."
    )
    tags: list[Annotated[str, Field(pattern=TAG_PATTERN)]] = Field(
        default_factory=list, description="Extra tags besides <variant>-<toolkit version> and <variant>."
    )
    source: Text | None = Field(None, description="Source URL for the org.opencontainers.image.source label.")


class Preset(_Strict):
    name: Text = Field(description="Preset name shown in the Hub.")
    defaults: dict[str, Scalar] = Field(description="Setting values by environment name.")


class Hub(_Strict):
    category: Literal["audio", "embedding", "language", "video", "image"] = Field(
        "language", description="Hub category."
    )
    icon_url: Text | None = Field(None, description="Hub icon URL.")
    gpu_ids: list[Text] = Field(
        default_factory=lambda: ["AMPERE_24", "ADA_24"],
        description="RunPod GPU pool ids (builder/compat/gpu_pools.yaml); an entry '-TYPE' excludes a GPU "
        "type of those pools. Types the FastDeploy build cannot run are excluded without being named "
        "(docs/gpu-pools.md).",
    )
    gpu_count: int | None = Field(None, ge=1, description="GPUs per worker; default: tensor_parallel_size.")
    container_disk_gb: int | None = Field(
        None,
        ge=1,
        description="Container disk; default: weights plus the base image headroom, with 10% of the disk "
        "left free (the RunPod SDK stops a worker below that).",
    )
    allowed_cuda_versions: list[Text] | None = Field(
        None, description="Host CUDA versions; default: the image's CUDA version and newer."
    )
    presets: list[Preset] = Field(default_factory=list, description="Hub presets.")
    expose: list[Text] | None = Field(
        None, description="Settings offered in hub.json (default: every setting the runtime offers)."
    )
    advanced: list[Text] | None = Field(
        None, description="Settings shown as advanced (default: per worker_runtime/config/settings.py)."
    )


class HubTest(_Strict):
    name: Text = Field(description="Test name.")
    input: dict[str, Any] = Field(description="Raw job input (native or OpenAI passthrough).")
    timeout: int = Field(600000, ge=1000, description="Timeout in milliseconds.")


class HubTests(_Strict):
    jobs: list[HubTest] = Field(default_factory=list, description="Hub test jobs (tests.json).")
    gpu_type_id: Text | None = Field(
        None,
        description="GPU type for the Hub tests, one of the pools' types the worker can run; default: the "
        "first pool's representative type (or its first runnable type).",
    )


class Endpoint(_Strict):
    type: Literal["queue", "load_balancer"] = Field(
        "queue",
        description="RunPod endpoint kind the image serves (ENDPOINT_TYPE): queue (RunPod's job API: "
        "/run, /runsync, /stream, the OpenAI passthrough) or load_balancer (the worker's own HTTP server "
        "on PORT at https://ENDPOINT_ID.api.runpod.ai: the OpenAI routes and POST /generate; hub.json "
        'config.endpointType "LB"). A listing or an endpoint is one kind; it cannot be changed later.',
    )


class Variant(_Strict):
    extends: Text | None = Field(
        None, description="Base file to extend (name in the same folder, or a path)."
    )
    name: str = Field(pattern=NAME_PATTERN, description="Variant name: file name, build directory and tag.")
    title: Text = Field(description="Title (Hub listing, README, image label).")
    description: Text = Field(description="One-line description.")
    model: ModelSource = Field(description="The model served.")
    engine: Engine = Field(
        default_factory=Engine, description="FastDeploy release, install route and settings."
    )
    image: Image = Field(description="Image repository and tags.")
    hub: Hub = Field(default_factory=Hub, description="RunPod Hub listing (hub.json).")
    tests: HubTests = Field(default_factory=HubTests, description="RunPod Hub tests (tests.json).")
    endpoint: Endpoint = Field(
        default_factory=Endpoint, description="The kind of RunPod endpoint the image serves."
    )
