"""The settings catalogue: every environment variable the worker reads (``SETTINGS``) and the
typed, validated values (``Settings``).

Standard library only and free of heavy imports: the builder imports ``SETTINGS`` to derive the
hub.json inputs and the Dockerfile ENV defaults, so every exposed setting is one the runtime reads.
Parsing lives in ``settings``; what one FastDeploy release accepts lives in ``release``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, make_dataclass
from typing import Any

# The FastDeploy release an image without FASTDEPLOY_VERSION is taken to hold (the builder's default too).
DEFAULT_RELEASE = "2.5.0"
# MAX_CONCURRENCY when neither it nor MAX_NUM_SEQS is set.
DEFAULT_MAX_CONCURRENCY = 8


@dataclass(frozen=True)
class Setting:
    env: str  # environment variable name
    kind: str  # "str" | "int" | "float" | "bool" | "choice" | "json" | "args"
    description: str  # one sentence; feeds hub.json and the README tables
    default: str | int | float | bool | None = None  # None: unset -> engine's own default, flag omitted
    flag: str | None = None  # engine flag (2.5 spelling) it maps to; None = read by the runtime
    engine_env: str | None = None  # FastDeploy environment variable it maps to instead of (or beside) a flag
    # How a value is written to engine_env: (value, word) pairs, word None = not written; a value not
    # listed is written as is. A bool setting with a flag and an env word for a value takes the env for it.
    engine_env_words: tuple[tuple[Any, str | None], ...] = ()
    engine_default: Any = None  # the engine's value without the flag: a release lacking the flag keeps it
    choices: tuple[str, ...] = ()  # fixed choices for kind "choice"
    choices_from: str | None = None  # key in an engine_flags.json release entry giving the choices
    minimum: float | None = None
    maximum: float | None = None
    advanced: bool = False  # hub.json input "advanced"
    in_hub: bool = True  # False: fixed by the image, not offered to users
    required: bool = False  # no default: the worker does not start without it

    def env_word(self, value: Any) -> str | None:
        """What ``value`` writes to ``engine_env`` (None: nothing)."""
        if self.engine_env is None or value is None:
            return None
        word = dict(self.engine_env_words).get(value, value)
        return None if word is None else str(word)


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "MODEL",
        "str",
        "Model path inside the image or a repository id to download.",
        flag="--model",
        required=True,
    ),
    Setting(
        "MODEL_REVISION",
        "str",
        "Model revision (branch, tag or commit) to download.",
        flag="--revision",
        advanced=True,
    ),
    Setting(
        "SERVED_MODEL_NAME",
        "str",
        "Model name clients send and responses report; requests without a model get it filled in. "
        "Default: MODEL, or the repository id of the weights baked at MODEL.",
        flag="--served-model-name",
    ),
    # Bounds FastDeploy asserts at startup (its config check): max_model_len >= 16, 1 <= max_num_seqs <= 256.
    Setting("MAX_MODEL_LEN", "int", "Maximum context length in tokens.", flag="--max-model-len", minimum=16),
    Setting(
        "MAX_NUM_SEQS",
        "int",
        "Maximum number of sequences the engine decodes at once.",
        flag="--max-num-seqs",
        minimum=1,
        maximum=256,
    ),
    Setting(
        "TENSOR_PARALLEL_SIZE",
        "int",
        "Number of GPUs the model is split across.",
        default=1,
        flag="--tensor-parallel-size",
        engine_default=1,
        minimum=1,
        maximum=16,
    ),
    Setting(
        "GPU_MEMORY_UTILIZATION",
        "float",
        "Fraction of GPU memory the engine may use.",
        flag="--gpu-memory-utilization",
        minimum=0.05,
        maximum=0.99,
    ),
    Setting(
        "QUANTIZATION",
        "choice",
        "Weight quantization; unset serves the checkpoint as is (BF16).",
        flag="--quantization",
        choices_from="quantization",
    ),
    Setting(
        "MAX_CONCURRENCY",
        "int",
        f"Jobs this worker takes at once; unset means MAX_NUM_SEQS, else {DEFAULT_MAX_CONCURRENCY}.",
        minimum=1,
    ),
    Setting(
        "REASONING_PARSER",
        "choice",
        "Parser that splits reasoning_content from the answer.",
        flag="--reasoning-parser",
        choices_from="reasoning_parsers",
        advanced=True,
    ),
    Setting(
        "TOOL_CALL_PARSER",
        "choice",
        "Parser that turns model output into tool_calls.",
        flag="--tool-call-parser",
        choices_from="tool_parsers",
        advanced=True,
    ),
    # Passed always, "off" included: the worker refuses structured outputs when it is off, which holds only
    # while the engine really runs with it off (FastDeploy's default could change).
    Setting(
        "GUIDED_DECODING_BACKEND",
        "choice",
        "Guided decoding backend that enforces structured outputs (response_format JSON, guided_json, "
        "guided_regex, guided_choice, guided_grammar, structural_tag); off refuses them with 400. The "
        "image must carry the backend's packages (a variant with engine.guided_decoding_backend).",
        default="off",
        flag="--guided-decoding-backend",
        choices=("off", "xgrammar", "guidance"),
        advanced=True,
        in_hub=False,
    ),
    Setting(
        "ENABLE_PREFIX_CACHING",
        "bool",
        "Reuse KV cache across requests sharing a prefix; unset keeps the engine's default.",
        flag="--enable-prefix-caching",
        advanced=True,
    ),
    Setting(
        "ENABLE_CHUNKED_PREFILL",
        "bool",
        "Split long prompts into chunks; false sets FD_DISABLE_CHUNKED_PREFILL=1.",
        flag="--enable-chunked-prefill",
        engine_env="FD_DISABLE_CHUNKED_PREFILL",
        engine_env_words=((True, None), (False, "1")),
        advanced=True,
    ),
    Setting(
        "MAX_NUM_BATCHED_TOKENS",
        "int",
        "Maximum tokens in one engine batch.",
        flag="--max-num-batched-tokens",
        minimum=1,
        advanced=True,
    ),
    Setting(
        "BLOCK_SIZE", "int", "KV cache block size in tokens.", flag="--block-size", minimum=1, advanced=True
    ),
    Setting(
        "KV_CACHE_RATIO",
        "float",
        "Share of KV cache blocks for decoding (older schedulers).",
        flag="--kv-cache-ratio",
        minimum=0.0,
        maximum=1.0,
        advanced=True,
    ),
    Setting(
        "LOAD_CHOICES",
        "choice",
        "Weight loader; default_v1 is needed for Hugging Face Torch weights.",
        flag="--load-choices",
        choices_from="load_choices",
        advanced=True,
    ),
    Setting(
        "LIMIT_MM_PER_PROMPT",
        "json",
        'Multimodal items per prompt as a JSON object, e.g. {"image": 10}.',
        flag="--limit-mm-per-prompt",
        advanced=True,
    ),
    Setting(
        "MODEL_SOURCE",
        "choice",
        "Where a repository id is downloaded from (local: MODEL is a path).",
        engine_env="FD_MODEL_SOURCE",
        engine_env_words=(
            ("huggingface", "HUGGINGFACE"),
            ("aistudio", "AISTUDIO"),
            ("modelscope", "MODELSCOPE"),
            ("local", None),
        ),
        choices=("huggingface", "aistudio", "modelscope", "local"),
        advanced=True,
    ),
    Setting(
        "MODEL_CACHE_DIR",
        "str",
        "Download cache; defaults to /runpod-volume/fastdeploy when a network volume is mounted.",
        engine_env="FD_MODEL_CACHE",
        advanced=True,
    ),
    Setting(
        "BAKED_MODEL_ID",
        "str",
        "Repository id of the weights baked into the image: the served name while MODEL is their folder.",
        in_hub=False,
    ),
    # RunPod's model cache (serverless/endpoints/model-caching.mdx): the endpoint names a Hugging Face
    # model, its snapshot is mounted under HF_HUB_CACHE's default below (worker_runtime.engine.model_cache).
    Setting(
        "MODEL_CACHED",
        "bool",
        "Start from the endpoint's cached model (the Hugging Face cache in HF_HUB_CACHE), not a download.",
        default=False,
        in_hub=False,
    ),
    Setting(
        "MODEL_CACHE_FILES",
        "args",
        "Glob patterns a cached snapshot must match, each at least one file (config.json always).",
        default="",
        in_hub=False,
    ),
    Setting(
        "MODEL_CACHE_FALLBACK",
        "bool",
        "When the cached model is missing or incomplete, download it (true) or fail at start (false).",
        default=True,
        advanced=True,
    ),
    Setting(
        "HF_HUB_CACHE",
        "str",
        "Hugging Face cache searched for a cached model; unset: /runpod-volume/huggingface-cache/hub.",
        in_hub=False,
    ),
    Setting(
        "LOGPROBS",
        "bool",
        "Start the engine with --enable-logprob, so that jobs may ask for logprobs (else they are refused).",
        flag="--enable-logprob",
        advanced=True,
    ),
    Setting(
        "STOP_ON_DISCONNECT",
        "bool",
        "Stop generating when a job is cancelled or times out; false lets the engine finish it unread.",
        default=True,
        # Without it FastDeploy keeps generating for a client that left (a cancelled or timed-out job).
        engine_env="FD_ENABLE_REQUEST_DISCONNECT_STOP_INFERENCE",
        engine_env_words=((True, "1"), (False, "0")),
        advanced=True,
    ),
    # FastDeploy reports hardware, model and configuration from its first GPU worker unless
    # DO_NOT_TRACK=1 (docs/upstream-notes.md).
    Setting(
        "FASTDEPLOY_USAGE_STATS",
        "bool",
        "Let FastDeploy send its usage report (hardware, model, configuration) to FD_USAGE_STATS_SERVER; "
        "false sets DO_NOT_TRACK=1.",
        default=False,
        engine_env="DO_NOT_TRACK",
        engine_env_words=((True, "0"), (False, "1")),
        advanced=True,
    ),
    Setting(
        "ENGINE_ARGS",
        "args",
        "Extra engine flags as shell words, each checked against the FastDeploy release.",
        default="",
        advanced=True,
    ),
    Setting(
        "ENGINE_STARTUP_TIMEOUT",
        "float",
        "Seconds to wait for the engine to load before failing.",
        default=1800.0,
        minimum=0.1,
        advanced=True,
    ),
    Setting(
        "REQUEST_TIMEOUT",
        "float",
        "Seconds the engine may stay silent: until a non-stream answer, or between stream chunks.",
        default=600.0,
        minimum=0.1,
        advanced=True,
    ),
    Setting(
        "ENDPOINT_TYPE",
        "choice",
        "RunPod endpoint kind served: queue (RunPod's job API) or load_balancer (HTTP on PORT).",
        default="queue",
        choices=("queue", "load_balancer"),
        advanced=True,
    ),
    Setting(
        "PORT",
        "int",
        "Port of the worker's HTTP server on a load-balancing endpoint.",
        default=80,
        minimum=1,
        maximum=65535,
        in_hub=False,
    ),
    Setting(
        "PORT_HEALTH",
        "int",
        "Port of the health check on a load-balancing endpoint (default: PORT).",
        minimum=1,
        maximum=65535,
        in_hub=False,
    ),
    Setting(
        "HEALTH_CHECK_PATH",
        "str",
        "Path of the health check on a load-balancing endpoint.",
        default="/ping",
        in_hub=False,
    ),
    Setting(
        "SHUTDOWN_GRACE_SECONDS",
        "float",
        "On SIGTERM, seconds a load-balancing worker lets running requests finish; then they end with an "
        "error event and the worker stops within 2 s more.",
        default=5.0,
        minimum=0.0,
        advanced=True,
    ),
    # Bounds on callers (serve/callers.py), inside RunPod's own limits on load-balancing endpoints
    # (load-balancing/overview.mdx): 2 min waiting for a worker, 5.5 min per request, 30 MB payloads.
    Setting(
        "CLIENT_HEADER_TIMEOUT",
        "float",
        "Seconds a caller may take to send a request's headers; also how long an idle connection stays open.",
        default=30.0,
        minimum=0.1,
        in_hub=False,
    ),
    Setting(
        "CLIENT_BODY_TIMEOUT",
        "float",
        "Seconds a caller may take to send a request's body (30 MB at most); a slower one gets 408.",
        default=60.0,
        minimum=0.1,
        in_hub=False,
    ),
    Setting(
        "CLIENT_STALL_TIMEOUT",
        "float",
        "Seconds a caller may go without taking any of its answer before the worker cuts it and stops "
        "its generation.",
        default=30.0,
        minimum=0.1,
        in_hub=False,
    ),
    Setting(
        "FASTDEPLOY_VERSION",
        "str",
        "FastDeploy release inside the image; decides which flags are emitted.",
        default=DEFAULT_RELEASE,
        in_hub=False,
    ),
    Setting(
        "WORKER_DEPS_DIR",
        "str",
        "Folder of the runtime's own packages, removed from the engine's PYTHONPATH.",
        in_hub=False,
    ),
)

SETTINGS_BY_ENV: dict[str, Setting] = {s.env: s for s in SETTINGS}


KINDS: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "choice": str,
    "json": dict,
    "args": tuple,
}


def typed_default(setting: Setting) -> Any:
    """A setting's default as its value type (an ``args`` default is shell words)."""
    if setting.kind == "args" and isinstance(setting.default, str):
        return tuple(shlex.split(setting.default))
    return setting.default


def _value(self: Any, env: str) -> Any:
    """The typed value of the setting read from environment variable ``env``."""
    return getattr(self, env.lower())


# Validated settings, one field per Setting (``env.lower()``), each defaulting to the catalogue's
# default: a new setting is its catalogue entry only. None means unset (the engine's own default).
Settings = make_dataclass(
    "Settings",
    [
        (s.env.lower(), KINDS[s.kind])
        if s.required
        else (s.env.lower(), KINDS[s.kind] | None, field(default=typed_default(s)))
        for s in SETTINGS
    ],
    namespace={"value": _value, "__doc__": "Validated settings; None: unset (the engine's own default)."},
    frozen=True,
)
