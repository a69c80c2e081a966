"""Runtime settings: every environment variable the worker reads, in one typed place.

Standard library only and free of heavy imports: the builder imports ``SETTINGS`` to derive the
hub.json inputs and the Dockerfile ENV defaults, so every exposed setting is one the runtime reads.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FLAGS_FILE = Path(__file__).with_name("engine_flags.json")
VOLUME_DIR = "/runpod-volume"
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
# Words that also mean "unset" for optional choices (a manifest once passed "None" literally).
UNSET_WORDS = ("none", "null")
# Choice lists whose names FastDeploy normalises ("_" -> "-") before the lookup, on every release.
PARSER_CHOICES = ("reasoning_parsers", "tool_parsers")


@dataclass(frozen=True)
class Setting:
    env: str  # environment variable name
    kind: str  # "str" | "int" | "float" | "bool" | "choice" | "json" | "args"
    description: str  # one sentence; feeds hub.json and the README tables
    default: str | int | float | bool | None = None  # None: unset -> engine's own default, flag omitted
    flag: str | None = None  # engine flag (2.5 spelling) it maps to; None = read by the runtime
    engine_env: str | None = None  # FastDeploy environment variable it maps to instead of a flag
    choices: tuple[str, ...] = ()  # fixed choices for kind "choice"
    choices_from: str | None = None  # key in an engine_flags.json release entry giving the choices
    minimum: float | None = None
    maximum: float | None = None
    advanced: bool = False  # hub.json input "advanced"
    in_hub: bool = True  # False: fixed by the image, not offered to users


SETTINGS: tuple[Setting, ...] = (
    Setting("MODEL", "str", "Model path inside the image or a repository id to download.", flag="--model"),
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
        "Model name clients send and responses report; requests without a model get it filled in.",
        flag="--served-model-name",
    ),
    Setting("MAX_MODEL_LEN", "int", "Maximum context length in tokens.", flag="--max-model-len", minimum=1),
    Setting(
        "MAX_NUM_SEQS",
        "int",
        "Maximum number of sequences the engine decodes at once.",
        flag="--max-num-seqs",
        minimum=1,
    ),
    Setting(
        "TENSOR_PARALLEL_SIZE",
        "int",
        "Number of GPUs the model is split across.",
        default=1,
        flag="--tensor-parallel-size",
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
        "Jobs this worker takes at once; unset means MAX_NUM_SEQS, else 8.",
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
        "FASTDEPLOY_VERSION",
        "str",
        "FastDeploy release inside the image; decides which flags are emitted.",
        default="2.5.0",
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


@dataclass(frozen=True)
class Settings:
    """Validated settings; None means unset (the engine's own default applies)."""

    model: str
    model_revision: str | None = None
    served_model_name: str | None = None
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    quantization: str | None = None
    max_concurrency: int = 8
    reasoning_parser: str | None = None
    tool_call_parser: str | None = None
    enable_prefix_caching: bool | None = None
    enable_chunked_prefill: bool | None = None
    max_num_batched_tokens: int | None = None
    block_size: int | None = None
    kv_cache_ratio: float | None = None
    load_choices: str | None = None
    limit_mm_per_prompt: dict[str, Any] | None = None
    model_source: str | None = None
    model_cache_dir: str | None = None
    engine_args: tuple[str, ...] = ()
    engine_startup_timeout: float = 1800.0
    request_timeout: float = 600.0
    fastdeploy_version: str = "2.5.0"
    worker_deps_dir: str | None = None

    def value(self, env: str) -> Any:
        """The typed value of the setting read from environment variable ``env``."""
        return getattr(self, env.lower())


class SettingsError(ValueError):
    """Every invalid variable at once, one line each, naming the value and what is allowed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"Invalid worker settings ({len(self.problems)}):\n{lines}")


def load_flag_table(path: Path = FLAGS_FILE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def parser_spelling(name: str, choices: tuple[str, ...] | list[str]) -> str | None:
    """The release's spelling of parser ``name``, or None when the release has no such parser.

    FastDeploy looks parser names up with "_" and "-" alike, so ``ernie_x1`` and ``ernie-x1`` are
    the same parser; the release's own spelling is the one emitted.
    """
    key = name.strip().lower().replace("_", "-")
    for choice in choices:
        if choice.lower().replace("_", "-") == key:
            return choice
    return None


def _allowed(setting: Setting, choices: tuple[str, ...] | list[str]) -> str:
    kind = setting.kind
    if kind == "choice":
        return "one of " + ", ".join(choices) if choices else "nothing in this release (leave it unset)"
    if kind == "bool":
        return "true or false (also 1/0, yes/no, on/off)"
    if kind in ("int", "float"):
        noun = "an integer" if kind == "int" else "a number"
        if setting.minimum is not None and setting.maximum is not None:
            return f"{noun} from {setting.minimum:g} to {setting.maximum:g}"
        if setting.minimum is not None:
            return f"{noun} >= {setting.minimum:g}"
        return noun
    if kind == "json":
        return "a JSON object"
    if kind == "args":
        return "shell words, e.g. --flag value --other-flag"
    return "a string"


def _parse(setting: Setting, raw: str, choices: tuple[str, ...] | list[str]) -> Any:
    """Typed value of ``raw``; raises ValueError with the allowed values on a bad one."""
    kind = setting.kind
    bad = ValueError(f"{setting.env}={raw!r} is invalid: expected {_allowed(setting, choices)}")
    if kind == "str":
        return raw.strip()  # a stray space typed into a web form is not part of a model name
    if kind == "args":
        try:
            return tuple(shlex.split(raw))
        except ValueError as exc:
            raise ValueError(f"{setting.env}={raw!r} is invalid ({exc}): expected shell words") from None
    if kind == "bool":
        word = raw.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise bad
    if kind == "choice":
        word = raw.strip()
        if word in choices:
            return word
        if word.lower() in choices:
            return word.lower()
        if setting.choices_from in PARSER_CHOICES and (name := parser_spelling(word, choices)) is not None:
            return name
        raise bad
    if kind == "json":
        try:
            value = json.loads(raw)
        except ValueError:
            raise bad from None
        if not isinstance(value, dict):
            raise bad
        return value
    if kind in ("int", "float"):
        try:
            number: int | float = int(raw.strip()) if kind == "int" else float(raw.strip())
        except ValueError:
            raise bad from None
        if number != number or number in (float("inf"), float("-inf")):  # NaN or infinite
            raise bad
        if setting.minimum is not None and number < setting.minimum:
            raise bad
        if setting.maximum is not None and number > setting.maximum:
            raise bad
        return number
    raise AssertionError(f"unknown setting kind {kind!r}")


def load_settings(
    environ: Mapping[str, str],
    *,
    flag_table: Mapping[str, Any] | None = None,
    volume_dir: str = VOLUME_DIR,
) -> Settings:
    """Read and validate every setting from ``environ``; one SettingsError lists all problems."""
    table = flag_table if flag_table is not None else load_flag_table()
    releases: Mapping[str, Any] = table["releases"]
    problems: list[str] = []
    values: dict[str, Any] = {}

    version = (environ.get("FASTDEPLOY_VERSION") or "").strip() or "2.5.0"
    release = releases.get(version)
    if release is None:
        problems.append(
            f"FASTDEPLOY_VERSION={version!r} is invalid: expected one of {', '.join(sorted(releases))}"
        )
        release = releases[max(releases, key=lambda v: tuple(int(p) for p in v.split(".")))]

    for setting in SETTINGS:
        raw = environ.get(setting.env, "")
        choices: tuple[str, ...] | list[str] = (
            release.get(setting.choices_from, []) if setting.choices_from else setting.choices
        )
        unset = raw.strip() == "" or (setting.kind == "choice" and raw.strip().lower() in UNSET_WORDS)
        if setting.env == "FASTDEPLOY_VERSION":
            values["fastdeploy_version"] = version
            continue
        if unset:
            default = setting.default
            if setting.kind == "args" and isinstance(default, str):
                default = tuple(shlex.split(default))
            values[setting.env.lower()] = default
            continue
        try:
            values[setting.env.lower()] = _parse(setting, raw, choices)
        except ValueError as exc:
            problems.append(str(exc))

    if not values.get("model"):
        problems.append("MODEL is required: a model path inside the image or a repository id")

    # Derived defaults.
    if values.get("max_concurrency") is None:
        values["max_concurrency"] = values.get("max_num_seqs") or 8
    if values.get("model_cache_dir") is None and os.path.isdir(volume_dir):
        values["model_cache_dir"] = os.path.join(volume_dir, "fastdeploy")

    # Flags that the chosen release does not have (including ENGINE_ARGS) are startup errors too.
    from worker_runtime.engine_args import release_problems  # stdlib-only; imported late (cycle)

    problems.extend(release_problems(values, release, version))

    if problems:
        raise SettingsError(problems)
    return Settings(**values)
